# Sourced by the bench/*.sh scripts once they are in the repository root. PY: the interpreter (PYTHON if set,
# else .venv's, else python3: the GPU machine has no .venv); bench/*.py import cimc from this checkout.
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# Sourced by run.sh: puts the project's virtual environment on PATH, creating it on first use.
CIMC_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bash "$CIMC_ROOT/tools/setup_env.sh"
# shellcheck disable=SC1091
. "${CIMC_VENV:-$CIMC_ROOT/.venv}/bin/activate"
export PYTHONUNBUFFERED=1

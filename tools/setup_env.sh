#!/usr/bin/env bash
# Create the project's virtual environment at <repo>/.venv (once) and install cimc into it, editable.
# torch is pinned to 2.13.0: pip takes the CPU wheel that lies on the machine instead of fetching a
# multi-GB CUDA build. Rerunning is cheap: an existing, working environment is left as it is.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CIMC_VENV:-$root/.venv}
if [ -x "$venv/bin/cimc" ] && "$venv/bin/python" -c "import cimc, torch, lhotse" 2>/dev/null; then
  exit 0
fi
python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 10), "cimc needs Python 3.10 or newer"'
echo "$(date '+%F %T') setting up $venv (first use; a few minutes)" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -e "$root[test]" >&2
echo "$(date '+%F %T') environment ready: $venv" >&2

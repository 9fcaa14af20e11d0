#!/usr/bin/env bash
# Create the project's virtual environment at <repo>/.venv (once) and install cimc into it, editable.
# torch is pinned to 2.13.0: pip takes the CPU wheel that lies on the machine instead of fetching a
# multi-GB CUDA build. A stamp holding pyproject.toml's checksum makes reruns free (no Python start-up),
# and a changed pyproject.toml (a new dependency) reinstalls.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${CIMC_VENV:-$root/.venv}
stamp=$venv/.cimc-installed
want=$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)
if [ -x "$venv/bin/cimc" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python=${PYTHON:-python3}
"$python" -c 'import sys; assert sys.version_info >= (3, 10), "cimc needs Python 3.10 or newer"'
echo "$(date '+%F %T') setting up $venv (first use or pyproject.toml changed; a few minutes)" >&2
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip >&2
"$venv/bin/python" -m pip install -q -e "$root[test]" >&2
"$venv/bin/python" -c "import cimc, torch, lhotse"
echo "$want" > "$stamp"
echo "$(date '+%F %T') environment ready: $venv" >&2

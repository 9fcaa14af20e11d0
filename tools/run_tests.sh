#!/usr/bin/env bash
# The test command of the README Quickstart (and of CI): set up .venv on first use, then pytest.
# Extra arguments go to pytest, e.g. `tools/run_tests.sh -k metrics`.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/tools/setup_env.sh"
cd "$root"
exec "${CIMC_VENV:-$root/.venv}/bin/python" -m pytest -q "$@" tests

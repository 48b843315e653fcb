#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# pytest exits 5 when it collects nothing: set -e makes that a failure too.
python -m pytest -q "$@"

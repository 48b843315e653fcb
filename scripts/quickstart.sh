#!/usr/bin/env bash
# Set up (if needed) and run the local quickstart notebook headless: fine-tune the built-in tiny model
# on the bundled sample, register, deploy, score, chat, delete. Prints the metrics and the reply.
set -euo pipefail
cd "$(dirname "$0")/.."
AZML_SKIP_SYSTEM_SETUP=1 bash scripts/setup.sh
. .venv/bin/activate
mkdir -p test-artifacts
python scripts/run_notebook.py notebooks/quickstart_local.ipynb --save test-artifacts/quickstart_local.executed.ipynb

#!/usr/bin/env bash
# Create .venv and install azml_magics with the local backend and the test tools. Idempotent.
# torch is installed first and pinned: an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[local,test]"
for extra in .ci/azurite.sh .ci/browser.sh; do
  if [ -f "$extra" ] && [ "${AZML_SKIP_SYSTEM_SETUP:-0}" != "1" ]; then bash "$extra"; fi
done
python -c "import azml_magics, torch; print('azml_magics', azml_magics.__version__, '| torch', torch.__version__)"

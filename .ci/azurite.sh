#!/usr/bin/env bash
# Installs Azurite (the Azure Storage emulator, npm) into .ci/node_modules for the Azure ML emulator's
# blob uploads. Idempotent: does nothing when the pinned version is already there.
# 3.35.0 is the last release whose engines field accepts Node 20.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="3.35.0"
bin="$here/node_modules/.bin/azurite-blob"
installed="$here/node_modules/azurite/package.json"
if [ -x "$bin" ] && grep -q "\"version\": \"$version\"" "$installed" 2>/dev/null; then
  exit 0
fi
command -v npm >/dev/null || { echo "azurite.sh: npm not found (apt-get install nodejs npm)" >&2; exit 1; }
npm install --prefix "$here" --no-audit --no-fund --no-save --loglevel=error "azurite@$version" >&2
test -x "$bin"

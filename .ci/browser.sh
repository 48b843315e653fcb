#!/usr/bin/env bash
# Installs what the real-browser test needs: Debian's chromium (Playwright's own browser download
# does not work here; the test launches /usr/bin/chromium through executable_path).
# Idempotent: does nothing when chromium is already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
command -v apt-get >/dev/null || { echo "browser.sh: apt-get not found; install chromium at /usr/bin/chromium" >&2; exit 1; }
sudo=""
if [ "$(id -u)" != "0" ]; then
  command -v sudo >/dev/null || { echo "browser.sh: need root or sudo to apt-get install chromium" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >&2
test -x /usr/bin/chromium

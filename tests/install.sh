#!/usr/bin/env bash
# Installs everything the test suite needs on a Debian or Ubuntu machine, then exits; the README's
# test command runs `python -m pytest` after it. Safe to run again: what is there is kept.
#   - the Python packages (requirements-dev.txt, which includes requirements.txt);
#   - a Chromium for the real-browser tests: one already on the machine, else Debian's `chromium`
#     package, else Playwright's own build with its system libraries (Ubuntu ships Chromium
#     only as a snap, which a headless test cannot drive).
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -r requirements-dev.txt

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

if [ -n "${CHROMIUM_PATH:-}" ] || [ -x /usr/bin/chromium ] || [ -x /usr/bin/google-chrome ]; then
  echo "tests/install.sh: Chromium found; packages installed."
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null 2>&1 && $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; then
  echo "tests/install.sh: installed Debian's chromium."
else
  echo "tests/install.sh: no Debian chromium package here; installing Playwright's Chromium instead."
  if [ -n "$SUDO" ] || [ "$(id -u)" = 0 ]; then
    $SUDO python -m playwright install-deps chromium
  fi
  python -m playwright install chromium
fi

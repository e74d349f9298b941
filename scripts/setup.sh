#!/usr/bin/env bash
# One command sets up a fresh Debian machine: Chromium for the browser tests, then Python deps.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
python -m pip install -q -r requirements.txt
python -m pip install -q --no-deps -e .

#!/usr/bin/env bash
# One command sets up a fresh Debian machine: Chromium for the browser tests (Debian's package),
# then a fresh virtual environment with requirements.txt's pins and the project (editable).
# A virtual environment, never the machine's own site-packages, so a package that requirements.txt
# lacks is missing here as it is on a Space, and the tests fail the way the Space would.
#   PYTHON  the interpreter to build it from (default python3)
#   VENV    where it goes (default .venv); CI: PYTHON=python3.12 VENV=.venv-3.12
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" -m pip install -q --no-deps -e .
"$VENV/bin/python" -m pip check
echo "Set up $VENV ($("$VENV/bin/python" --version)); run the tests with: $VENV/bin/python -m pytest -q"

#!/usr/bin/env bash
# Creates .venv (once) and installs edgecrystal with the extras named in $1 (default: train,test).
# Only Python >= 3.10 with venv and pip is needed on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,test}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[${extras}]"

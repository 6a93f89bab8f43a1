#!/usr/bin/env bash
# README command 2: set everything up, lint, then run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train,test
.venv/bin/ruff check edgecrystal converters calibration tests scripts
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# README command 2: set everything up, lint, check the import contracts and the types, then the
# fast test tier (no TensorFlow: its imports are made to fail) and the slow tier (TensorFlow).
# Extra arguments go to both pytest runs (e.g. -x, -k NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train,test
echo "== ruff"
.venv/bin/ruff check edgecrystal converters calibration tests scripts
# lint-imports and mypy run on a staged copy of the installed layout (converters/ and
# calibration/ install as edgecrystal.converters/.calibration): see scripts/static_checks.py.
echo "== import contracts (lint-imports)"
.venv/bin/python scripts/static_checks.py imports
echo "== types (mypy)"
.venv/bin/python scripts/static_checks.py types
echo "== fast tier: pytest -m 'not slow', tensorflow/keras/tf2onnx blocked"
EDGECRYSTAL_BLOCK_TF=1 .venv/bin/python -m pytest -m "not slow" "$@"
echo "== slow tier: pytest -m slow (TensorFlow)"
exec .venv/bin/python -m pytest -m slow "$@"

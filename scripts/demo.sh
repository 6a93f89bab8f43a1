#!/usr/bin/env bash
# README command 1: set everything up, then run the main job on the embedded synthetic default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train,test
exec .venv/bin/edgecrystal demo --workdir "${EDGECRYSTAL_DEMO_DIR:-edgecrystal-demo}" "$@"

#!/usr/bin/env bash
# Build edgecrystal's wheel (what `pip install` on the imager takes; the name is not on PyPI)
# and check that it holds every package, the converters and calibration included.
# Usage: bash scripts/build_wheel.sh [OUT_DIR]   (default: dist/). scripts/test.sh can call it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/dist}"
python="${PYTHON:-$here/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"
mkdir -p "$out"
# Built in an isolated environment with the setuptools pyproject asks for (pip fetches it, or
# takes it from its cache): the venv's own setuptools may be older.
"$python" -m pip wheel "$here" --no-deps --quiet --wheel-dir "$out"
wheel="$(ls -t "$out"/edgecrystal-*.whl | head -1)"
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["edgecrystal/cli/__init__.py", "edgecrystal/converters/build.py",
        "edgecrystal/converters/rewrites/upsampling.py", "edgecrystal/calibration/quantize.py",
        "edgecrystal/daemon/service.py", "edgecrystal/bench/soak.py"]
missing = [n for n in need if n not in names]
stray = [n for n in names if n.split("/")[0] in ("converters", "calibration", "tests")]
if missing or stray:
    sys.exit(f"wheel {sys.argv[1]}: missing {missing}, stray top-level {stray}")
print(f"built {sys.argv[1]} ({len(names)} files)")
PY

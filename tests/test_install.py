"""Issue 15 item 11: the wheel a deployment installs, and the systemd unit's paths."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_the_wheel_builds_with_every_package(tmp_path: Path) -> None:
    res = subprocess.run(["bash", str(REPO / "scripts" / "build_wheel.sh"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600,
                         env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stdout + res.stderr
    wheel = next(tmp_path.glob("edgecrystal-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "edgecrystal/converters/build.py" in names
    assert "edgecrystal/converters/rewrites/upsampling.py" in names  # a package-dir subpackage
    assert "edgecrystal/gpu_check.py" in names  # user procedures are in the install
    assert "edgecrystal/bundle_export.py" in names
    assert not [n for n in names if n.startswith(("converters/", "calibration/", "tests/"))]
    # The shipped default bundle travels in the wheel: its description, models and every ONNX
    # variant it lists, and the wheel stays small.
    shipped = REPO / "edgecrystal" / "pretrained" / "bundle"
    listed = json.loads((shipped / "bundle.json").read_text())["files"]
    for rel in ["bundle.json", *listed]:
        assert f"edgecrystal/pretrained/bundle/{rel}" in names, rel
    assert any(rel.startswith("onnx/classifier.int8") for rel in listed)
    assert wheel.stat().st_size < 30_000_000


def test_the_unit_tolerates_missing_folders_and_its_docs_exist_after_install() -> None:
    unit = (REPO / "systemd" / "edgecrystal.service").read_text()
    paths = [p for line in unit.splitlines() if line.startswith("ReadWritePaths=")
             for p in line.split("=", 1)[1].split()]
    assert paths and all(p.startswith("-/") for p in paths), paths
    daemon_md = (REPO / "docs" / "daemon.md").read_text()
    for doc in re.findall(r"^Documentation=file://(\S+)$", unit, re.M):
        assert f"cp docs/daemon.md {Path(doc).parent}" in daemon_md, doc
    assert "pip install edgecrystal " not in daemon_md  # not on the package index
    assert "build_wheel.sh" in daemon_md

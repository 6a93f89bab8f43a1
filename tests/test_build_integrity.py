"""`build-engines` and the bundle's hashes: a file whose bytes no longer match bundle.json is
rebuilt (a variant) or refused (a source), never re-hashed; and a build that fails leaves the
bundle exactly as it was (it is built in a staging folder and swapped in only on success)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.converters.build import Options, build_engines
from edgecrystal.errors import BundleError, EdgeCrystalError


def imported_copy(fast_bundle: Path, where: Path) -> Path:
    """The fast bundle as `edgecrystal import` leaves one: its FP32 ONNX files are the models'
    sources (no Keras files), the FP16/INT8 variants and calibration records made from them."""
    root = where / "bundle"
    shutil.copytree(fast_bundle, root)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "ONNX (test fixture)"}
    bundle.save()
    return root


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def loads_in_onnxruntime(path: Path) -> bool:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under the bundle: inode, mtime and bytes (a rewrite in place shows too)."""
    seen = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            seen[str(path.relative_to(root))] = (st.st_ino, st.st_mtime_ns, path.read_bytes())
    return seen


def test_a_damaged_variant_is_rebuilt_not_rehashed(fast_bundle: Path, tmp_path: Path) -> None:
    root = imported_copy(fast_bundle, tmp_path)
    fp16, int8_u8 = root / "onnx/classifier.fp16.onnx", root / "onnx/classifier.int8-u8.onnx"
    truncate(fp16)
    truncate(int8_u8)
    # Only fp16 asked for: the damaged INT8 file is rebuilt all the same (it would be served).
    report = build_engines(root, Options(precisions=("fp16",)))
    made = {(s["model"], s["precision"]) for s in report.made if s["what"] == "onnx"}
    assert {("classifier", "fp16"), ("classifier", "int8")} <= made, report.steps
    assert loads_in_onnxruntime(fp16) and loads_in_onnxruntime(int8_u8)
    assert Bundle.open(root).verify_files() == []


def test_a_damaged_source_is_refused_and_nothing_changes(fast_bundle: Path,
                                                         tmp_path: Path) -> None:
    root = imported_copy(fast_bundle, tmp_path)
    truncate(root / "onnx/classifier.fp32.onnx")  # an imported model's source: no rebuilding it
    before = snapshot(root)
    with pytest.raises(BundleError, match="no longer matches") as refused:
        build_engines(root, Options(precisions=("fp16",)))
    assert "onnx/classifier.fp32.onnx" in str(refused.value)
    assert snapshot(root) == before
    # The command: one line, a non-zero exit, bundle.json still names the good hash.
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "build-engines", str(root),
                           "--precision", "fp16"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no longer matches" in done.stderr and "Traceback" not in done.stderr
    assert snapshot(root) == before


def test_a_failed_build_leaves_the_bundle_as_it_was(fast_bundle: Path, tmp_path: Path) -> None:
    root = imported_copy(fast_bundle, tmp_path)
    empty = tmp_path / "no-images"
    empty.mkdir()
    before = snapshot(root)
    # --force rewrites FP16 first, then INT8 calibration fails on the empty folder.
    with pytest.raises(EdgeCrystalError):
        build_engines(root, Options(precisions=("fp16", "int8"), calib=empty, force=True))
    assert snapshot(root) == before
    assert sorted(os.listdir(tmp_path)) == ["bundle", "no-images"]  # no staging folder left


def test_a_successful_build_is_swapped_in_whole(fast_bundle: Path, tmp_path: Path) -> None:
    root = imported_copy(fast_bundle, tmp_path)
    keep = json.loads((root / "bundle.json").read_text())["onnx"]["classifier"]["fp16"]["sha256"]
    link = tmp_path / "current"
    link.symlink_to(root)  # a bundle reached through a link: the real folder is rebuilt
    report = build_engines(link, Options(precisions=("fp16",), force=True))
    assert [s["action"] for s in report.steps if s["precision"] == "fp16"] == ["made", "made"]
    assert link.is_symlink() and link.resolve() == root
    meta = json.loads((root / "bundle.json").read_text())
    assert meta["onnx"]["classifier"]["fp16"]["sha256"] == keep  # the same conversion
    assert Bundle.open(root).verify_files() == []
    assert sorted(os.listdir(tmp_path)) == ["bundle", "current"]

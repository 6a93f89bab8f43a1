"""Keras -> ONNX export: parity with Keras, dynamic batch, metadata, skip on re-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.converters.keras_to_onnx import export_bundle
from edgecrystal.converters.onnx_files import read_metadata

# Keras models and TensorFlow in every test: the slow tier.
pytestmark = pytest.mark.slow


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_export_registers_variants_with_parity(onnx_bundle: Path) -> None:
    bundle = Bundle.open(onnx_bundle)
    for model, output in (("finder", "mask"), ("classifier", "scores")):
        entry = bundle.meta["onnx"][model]["fp32"]
        assert entry["backends"] == ["onnxruntime", "tensorrt"]
        assert entry["parity"]["max_abs_diff"] < 1e-4
        path = bundle.onnx_variant(model, "fp32", "tensorrt")
        assert path == onnx_bundle / f"onnx/{model}.fp32.onnx"
        assert entry["file"] in bundle.meta["files"]
        sess = _session(path)
        assert sess.get_inputs()[0].name == "pixels"
        assert sess.get_inputs()[0].type == "tensor(uint8)"
        assert sess.get_outputs()[0].name == output
    assert bundle.verify_files() == []


def test_dynamic_batch_and_metadata(onnx_bundle: Path) -> None:
    bundle = Bundle.open(onnx_bundle)
    path = bundle.onnx_variant("classifier", "fp32")
    sess = _session(path)
    size = bundle.meta["classifier"]["input_size"]
    rng = np.random.default_rng(1)
    for n in (1, 3):
        x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        scores = sess.run(None, {"pixels": x})[0]
        assert scores.shape == (n, len(bundle.classes))
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    meta = read_metadata(path)
    assert meta["role"] == "classifier"
    assert json.loads(meta["classes"]) == bundle.classes
    assert meta["preprocess_version"] == bundle.preprocess_version
    assert meta["input_dtype"] == "uint8"


def test_reexport_is_skipped_until_the_keras_file_changes(onnx_bundle: Path,
                                                          tmp_path: Path) -> None:
    root = tmp_path / "b"
    shutil.copytree(onnx_bundle, root)
    before = (root / "onnx/finder.fp32.onnx").stat().st_mtime_ns
    result = export_bundle(Bundle.open(root), models=("finder",))
    assert result["finder"]["action"] == "kept"
    assert (root / "onnx/finder.fp32.onnx").stat().st_mtime_ns == before


def test_the_export_prints_no_numpy_future_warning() -> None:
    """build-engines printed Keras' tf2onnx patch probing np.object (a FutureWarning) to users."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         "from edgecrystal.converters.keras_to_onnx import patch_tf2onnx_numpy2\n"
         "patch_tf2onnx_numpy2()"],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "FutureWarning" not in done.stderr, done.stderr

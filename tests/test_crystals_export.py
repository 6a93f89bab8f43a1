"""A Keras crystal model through build-engines and verify: exported to ONNX with its own output
name, checked against Keras, and compared by verify with Keras as the reference (issue 25 item
5; the crystal model itself is a small conv net here, its real builder is `train crystals`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.converters.build import Options, build_engines

# Keras and TensorFlow: the slow tier.
pytestmark = pytest.mark.slow
SIZE = 32


def _crystal_keras(path: Path) -> None:
    """uint8-range pixels in, scaled inside (as every model is), a per-pixel probability out."""
    import keras

    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(1, 1, activation="sigmoid")(x)
    keras.Model(inputs, outputs).save(path)


def test_keras_crystal_model_exports_and_verifies(fast_bundle: Path, fast_calibration_data: Path,
                                                  tmp_path: Path) -> None:
    from edgecrystal.converters.onnx_files import read_metadata
    from edgecrystal.converters.verify import run_verify

    root = tmp_path / "bundle"
    shutil.copytree(fast_bundle, root)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "ONNX (test fixture)"}
    bundle.section("crystals").update({"model": "crystals.keras", "input_size": SIZE,
                                       "threshold": 0.5})
    _crystal_keras(root / "crystals.keras")
    bundle.register_file("crystals.keras")
    bundle.save()
    report = build_engines(root, Options(precisions=("fp32", "fp16")))
    made = {(s["model"], s["precision"]): s for s in report.steps}
    assert made[("crystals", "fp32")]["action"] == "exported"
    assert made[("crystals", "fp32")]["max_abs_diff"] <= 1e-3
    bundle = Bundle.open(root)
    fp32 = bundle.variant("crystals", "fp32")
    assert fp32["output"] == "crystals" and fp32["parity"]["reference"] == "keras"
    assert read_metadata(bundle.path(fp32["file"]))["role"] == "crystals"
    result = run_verify(root, fast_calibration_data, n=4)
    info = result["models"]["crystals"]
    assert info["reference"] == "keras"
    assert info["variants"]["onnx-fp32"]["max_abs_diff"] <= 1e-3
    assert info["variants"]["onnx-fp16"]["dice32"] > 0.95

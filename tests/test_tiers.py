"""The test tiers themselves: the fast tier's TensorFlow block really blocks, and the fixture
models behave as the fast tests assume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.runtime.onnxruntime_runner import OnnxRuntimeRunner

BLOCKED = ("tensorflow", "keras", "tf2onnx")


@pytest.mark.skipif(os.environ.get("EDGECRYSTAL_BLOCK_TF") != "1",
                    reason="only with EDGECRYSTAL_BLOCK_TF=1 (scripts/test.sh's fast tier)")
@pytest.mark.parametrize("name", BLOCKED)
def test_blocked_here_and_in_child_processes(name: str) -> None:
    with pytest.raises(ImportError, match="blocked in the fast test tier"):
        __import__(name)
    child = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True,
                           text=True, timeout=60, check=False)
    assert child.returncode != 0 and "blocked in the fast test tier" in child.stderr


def test_fixture_finder_marks_the_light_drop(fast_bundle: Path) -> None:
    bundle = Bundle.open(fast_bundle)
    size = bundle.section("finder")["input_size"]
    well = np.full((1, size, size, 3), 80, np.uint8)
    yy, xx = np.mgrid[:size, :size]
    drop = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2
    well[0][drop] = (200, 180, 160)
    with OnnxRuntimeRunner(bundle.onnx_variant("finder", "fp32"), threads=1) as finder:
        mask = finder.predict(well)[0, ..., 0]
    assert mask[drop].mean() > 0.95 and mask[~drop].mean() < 0.1


def test_fixture_models_carry_the_export_metadata(fast_bundle: Path) -> None:
    from edgecrystal.converters.onnx_files import read_metadata
    from edgecrystal.models import INPUT_NAME

    bundle = Bundle.open(fast_bundle)
    for model in ("finder", "classifier"):
        path = bundle.onnx_variant(model, "fp32")
        meta = read_metadata(path)
        assert meta["role"] == model and meta["input_dtype"] == "uint8"
        assert meta["precision"] == "fp32" and meta["input_layout"] == "NHWC"
        with OnnxRuntimeRunner(path, threads=1) as runner:
            assert runner.inputs[0].name == INPUT_NAME and runner.inputs[0].shape[0] is None

"""The INT8 accuracy gate applied to TensorRT engines: the INT8 engine against the FP32 engine of
the same model on held-out images, run through the serving runner (tensorrt_runner), so
what is measured is what would serve. The result goes into engine.json beside the INT8 engine
(`engine_for(..., gate=...)` records whatever the gate returns as the entry's "gate").

The hook for issue 21's INT8 gate (which judges the ONNX variants): it chooses the held-out
images and the pass mark; `engine_gate` gives it the same two numbers for the engines. Not yet
called by build-engines: the held-out image choice belongs to that issue.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..engines.manifest import EngineGate


def compare_engines(reference: Path, candidate: Path, batch: np.ndarray) -> EngineGate:
    """Run both engines on `batch`: the largest absolute difference of their first output, and
    how often the top class (argmax over the last axis) agrees."""
    from .tensorrt_runner import TensorRTRunner

    with TensorRTRunner(reference) as ref_runner:
        want = ref_runner.predict(batch).astype(np.float32)
    with TensorRTRunner(candidate) as cand_runner:
        got = cand_runner.predict(batch).astype(np.float32)
    agree = float(np.mean(np.argmax(want, axis=-1) == np.argmax(got, axis=-1)))
    return {"images": int(batch.shape[0]), "reference": Path(reference).name,
            "max_abs_diff": float(np.max(np.abs(want - got))), "top1_agreement": agree}


def engine_gate(reference: Path, batch: np.ndarray,
                min_agreement: float) -> Callable[[Path], EngineGate]:
    """A `gate` for engine_for: compares the freshly built engine with `reference` (the FP32
    engine) and says whether top-1 agreement reaches `min_agreement`."""

    def gate(plan: Path) -> EngineGate:
        result = compare_engines(reference, plan, batch)
        result["min_agreement"] = min_agreement
        result["passed"] = result["top1_agreement"] >= min_agreement
        return result

    return gate

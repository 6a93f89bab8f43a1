"""Which precision this machine should run on the CPU: INT8 only where it is both faithful here
(build-engines' accuracy gate passed on this CPU family) and faster than FP32 here.

One rule (`advise`), two users: `bench` prints it from its full pipeline timings, and `serve`
with `precision = "auto"` takes it at start from a short timing of the models alone (a few
dozen runs of each precision on seeded pixels: about a second for the lite models), so the
advice is always this machine's, never a copy from the machine that built the bundle.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..bundle import Bundle
from ..errors import EdgeCrystalError

# INT8 is advised when its median time is at most this share of FP32's: a gain inside the noise
# of a short timing is no reason to leave the reference precision.
INT8_AT_MOST = 0.9
AUTO_WARMUP = 3
AUTO_RUNS = 15


@dataclass(frozen=True)
class Advice:
    precision: str
    reason: str


def advise(fp32_ms: float | None, int8_ms: float | None, int8_refused: str | None) -> Advice:
    """The precision to run from the two median times (None: not measured) and why INT8 may
    not run here (None: it may)."""
    if int8_refused:
        return Advice("fp32", f"fp32: int8 is not known to be faithful here ({int8_refused})")
    if fp32_ms is None or int8_ms is None:
        return Advice("fp32", "fp32: int8 and fp32 were not both timed here")
    ratio = int8_ms / fp32_ms if fp32_ms > 0 else float("inf")
    timing = f"int8 {int8_ms:.1f} ms against fp32 {fp32_ms:.1f} ms ({ratio:.2f}x)"
    if ratio <= INT8_AT_MOST:
        return Advice("int8", f"int8: faithful here (accuracy gate passed) and faster: {timing}")
    return Advice("fp32", f"fp32: int8 is not faster here: {timing}")


def int8_refusal(bundle: Bundle, models: list[str]) -> str | None:
    """Why ONNX Runtime must not run the bundle's INT8 here (None: it may)."""
    from .. import cpu_isa

    if not all(bundle.variant_for(m, "int8", "onnxruntime") for m in models):
        return "the bundle has no int8 variant for ONNX Runtime"
    family = cpu_isa.detect().family
    return (bundle.int8_unchecked(models, family)
            or bundle.int8_unusable(models, "onnxruntime", family))


def auto_precision(bundle: Bundle, threads: int = 0) -> Advice:
    """serve's `precision = "auto"`: time FP32 and INT8 of the runtime models here, advise."""
    models = bundle.runtime_models()  # the crystal model too where the bundle has one
    refused = int8_refusal(bundle, models)
    if refused:
        return advise(None, None, refused)
    try:
        fp32 = sum(_median_ms(bundle, m, "fp32", threads) for m in models)
        int8 = sum(_median_ms(bundle, m, "int8", threads) for m in models)
    except EdgeCrystalError as exc:
        return Advice("fp32", f"fp32: timing int8 failed ({exc})")
    return advise(fp32, int8, None)


def _median_ms(bundle: Bundle, model: str, precision: str, threads: int) -> float:
    from .onnxruntime_runner import OnnxRuntimeRunner

    size = bundle.input_size(model)
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    with OnnxRuntimeRunner(bundle.onnx_variant(model, precision), threads=threads) as runner:
        for _ in range(AUTO_WARMUP):
            runner.predict(pixels)
        times = []
        for _ in range(AUTO_RUNS):
            start = time.perf_counter()
            runner.predict(pixels)
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))

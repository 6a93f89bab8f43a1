"""INT8 as explicit Q/DQ ONNX through onnxruntime.quantization.quantize_static.

Two variants from one calibration:
- "int8" for TensorRT: signed int8 activations and weights, symmetric, zero point 0 everywhere
  (TensorRT's explicit quantization accepts nothing else), per-channel weights, Q/DQ only on the
  inputs of the ops TensorRT runs in INT8 (conv, deconv, matmul, pooling, concat): TensorRT
  propagates and fuses from there.
- "int8-u8" for ONNX Runtime on x86: uint8 (asymmetric) activations, int8 symmetric
  per-channel weights, all quantizable ops: the layout ORT's x86 kernels are fastest with.
  Its graph is rewritten for ONNX Runtime's CPU kernels before and after quantization by
  edgecrystal.converters.int8_variant (the rewrites: converters/rewrites/); this module
  quantizes whatever graph it is given.
Which one ONNX Runtime uses is decided by measuring both on this machine (see choose_for_ort).

The ONNX Runtime variant's integer form follows the CPU's instruction-set family
(edgecrystal/cpu_isa.py, FORM_FOR): u8 x s8 is exact and fastest where the CPU has VNNI or on
ARM64, but on x86 without VNNI ONNX Runtime multiplies u8 x s8 with VPMADDUBSW, whose int16
pair sums saturate; there the weights are u8 too (u8 x u8 widens to int16 first: exact). The
table behind that choice is in docs/conversion.md ("INT8 forms per CPU family").
"""

from __future__ import annotations

import contextlib
import inspect
import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from edgecrystal import cpu_isa
from edgecrystal.errors import UsageError
from edgecrystal.interface import INPUT_NAME

METHODS = ("entropy", "minmax", "percentile")
# Each model's method where neither --calib-method nor its calibration record names one
# (measured on the shipped models, 256 calibration and 320 held-out synthetic wells, ONNX Runtime
# 1.32, docs/conversion.md "Calibration methods"): percentile (99.99) keeps the classifier's
# labels far better than entropy (ONNX Runtime variant 0.916 -> 0.953, TensorRT's 0.741 -> 0.931)
# and the crystal map a little better; for the finder entropy is as good or better. Through
# quantize_static, ONNX Runtime's entropy calibrator returns the min/max ranges (it is given no
# bin counts, and its defaults leave one candidate threshold): "entropy" is min/max here.
DEFAULT_METHOD = {"finder": "entropy", "classifier": "percentile", "crystals": "percentile"}
TRT_OPS = ["Conv", "ConvTranspose", "MatMul", "Gemm", "MaxPool", "AveragePool",
           "GlobalAveragePool", "Concat"]
TARGETS = ("tensorrt", "onnxruntime")
# The models' last activations stay in float: quantized, a softmax's scores come out in steps of
# 1/255 (ties that blunt ROC curves and thresholds such as "crystals >= 0.7"). Only the logits
# feeding them are dequantized, so scores are continuous in every precision.
FLOAT_OUTPUT_OPS = ("Softmax", "Sigmoid")
CALIB_BATCH = 8
# ONNX Runtime variant forms: (weight type, reduce_range). Activations are uint8 in all.
FORMS = {"u8s8": ("QInt8", False), "u8s8-reduced": ("QInt8", True), "u8u8": ("QUInt8", False)}
# The form each CPU family gets (measured: docs/conversion.md, scripts/int8_forms.py). x86
# without VNNI saturates u8 x s8 pair sums; u8 x u8 is exact there.
FORM_FOR = {cpu_isa.X86_VNNI: "u8s8", cpu_isa.X86_AVX2: "u8u8", cpu_isa.X86_OLDER: "u8u8",
            cpu_isa.ARM64_I8MM: "u8s8", cpu_isa.ARM64_DOTPROD: "u8s8", cpu_isa.ARM64: "u8s8",
            cpu_isa.UNKNOWN: "u8u8"}


if TYPE_CHECKING:  # ONNX Runtime loads inside the functions that need it
    from onnxruntime.quantization import CalibrationMethod


class QdqScale(TypedDict):
    """One QuantizeLinear's activation scale and zero point (lists: per channel)."""

    scale: float | list[float]
    zero_point: int | list[int] | None
    dtype: str  # "uint8" | "int8"


def method_enum(name: str) -> CalibrationMethod:
    from onnxruntime.quantization import CalibrationMethod

    table = {"entropy": CalibrationMethod.Entropy, "minmax": CalibrationMethod.MinMax,
             "percentile": CalibrationMethod.Percentile}
    if name not in table:
        raise UsageError(f"--calib-method must be one of {', '.join(METHODS)} (got {name})")
    return table[name]


def default_method(model: str) -> str:
    """`model`'s calibration method when nothing names one (DEFAULT_METHOD; else entropy)."""
    return DEFAULT_METHOD.get(model, "entropy")


def calibration_batch(count: int) -> int:
    """Images per calibration batch: the largest size up to CALIB_BATCH that divides `count`.
    ONNX Runtime's histogram calibrators stack every batch's activations into one array, so a
    short last batch makes it fail ("inhomogeneous shape"); equal batches never do."""
    return max(b for b in range(1, CALIB_BATCH + 1) if count % b == 0) if count else 1


class _Batches:
    """CalibrationDataReader over a uint8 N x H x W x 3 array, in equal batches."""

    def __init__(self, inputs: np.ndarray, name: str = INPUT_NAME) -> None:
        self.inputs, self.name, self.pos = inputs, name, 0
        self.batch = calibration_batch(len(inputs))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.pos >= len(self.inputs):
            return None
        batch = self.inputs[self.pos : self.pos + self.batch]
        self.pos += self.batch
        return {self.name: batch}

    def rewind(self) -> None:
        self.pos = 0


def prepare(fp32: Path, out: Path) -> Path:
    """onnxruntime's quant_pre_process (shape inference + graph optimisation) into `out`;
    falls back to the FP32 file itself when pre-processing fails on this graph."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    except Exception:  # the pre-pass is an optimisation, never a reason to fail
        return fp32
    return out


def form_for(family: str | None = None) -> str:
    """The ONNX Runtime variant's form for CPU `family` (default: this machine's)."""
    return FORM_FOR.get(family or cpu_isa.detect().family, "u8u8")


def quantize(fp32: Path, out: Path, inputs: np.ndarray, target: str, method: str = "entropy",
             ranges_cache: Path | None = None, form: str | None = None) -> dict[str, object]:
    """Write the INT8 Q/DQ model of `fp32` for `target` to `out`. `ranges_cache` (JSON): tensor
    ranges reused when present (no calibration run), written when absent. `form` (FORMS): the
    ONNX Runtime variant's integer form, by default the one for this machine's CPU family.
    The graph is quantized as it is: the ONNX Runtime graph rewrites are applied around this by
    `edgecrystal.converters.int8_variant`."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if target not in TARGETS:
        raise UsageError(f"quantization target must be one of {', '.join(TARGETS)}")
    trt = target == "tensorrt"
    form = "s8s8" if trt else (form or form_for())
    if not trt and form not in FORMS:
        raise UsageError(f"INT8 form must be one of {', '.join(FORMS)} (got {form})")
    weight_type, reduce_range = FORMS.get(form, ("QInt8", False))
    extra: dict[str, bool | float] = {
        "WeightSymmetric": True,
        "ActivationSymmetric": trt,
        # Keras graphs add no bias scale problems; keep Q/DQ pairs per consumer for TensorRT's
        # fusions (its documented placement).
        "DedicatedQDQPair": trt,
    }
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    kwargs: dict[str, str] = {}
    if ranges_cache is not None and "calibration_cache_path" in inspect.signature(
            quantize_static).parameters:
        kwargs["calibration_cache_path"] = str(ranges_cache)
    prepared = prepare(fp32, out.with_suffix(".prep.onnx"))
    try:
        # The calibrators print progress to stdout; the command prints its own one line.
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(prepared), str(out), _Batches(inputs),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=TRT_OPS if trt else _ops_in_int8(prepared),
                per_channel=True,
                activation_type=QuantType.QInt8 if trt else QuantType.QUInt8,
                weight_type=getattr(QuantType, weight_type),
                reduce_range=reduce_range,
                calibrate_method=method_enum(method),
                extra_options=extra,
                **kwargs,
            )
    finally:
        if prepared != fp32:
            prepared.unlink(missing_ok=True)
    _drop_augmented(out)
    weights = "uint8" if weight_type == "QUInt8" else "int8"
    return {"target": target, "method": method, "images": len(inputs), "form": form,
               "activations": "int8 symmetric" if trt else "uint8 asymmetric",
               "weights": f"{weights} symmetric per-channel"
                          + (" (7-bit: reduce_range)" if reduce_range else ""),
               "ops": TRT_OPS if trt else "all"}


def _ops_in_int8(model_path: Path) -> list[str]:
    """Every op type of the graph except the float output activations (FLOAT_OUTPUT_OPS)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    return sorted({node.op_type for node in graph.node} - set(FLOAT_OUTPUT_OPS))


def _drop_augmented(out: Path) -> None:
    # quantize_static leaves its calibration graph beside the output in some versions.
    for stray in ("augmented_model.onnx",):
        (out.parent / stray).unlink(missing_ok=True)


def qdq_scales(path: Path) -> dict[str, QdqScale]:
    """Per-tensor activation scale and zero point of every QuantizeLinear in a Q/DQ model."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out: dict[str, QdqScale] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in init:
            continue
        scale = init[node.input[1]]
        zp = init.get(node.input[2]) if len(node.input) > 2 else None
        out[node.input[0]] = {
            "scale": scale.tolist(),
            "zero_point": None if zp is None else zp.tolist(),
            "dtype": "uint8" if zp is not None and zp.dtype == np.uint8 else "int8",
        }
    return out


def zero_points(path: Path) -> list[tuple[str, int]]:
    """(node name, largest |zero point|) of every QuantizeLinear/DequantizeLinear node."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    consts = {n.output[0]: numpy_helper.to_array(n.attribute[0].t)
              for n in model.graph.node if n.op_type == "Constant" and n.attribute}
    found = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            name = node.input[2] if len(node.input) > 2 else ""
            zp = init.get(name, consts.get(name, np.zeros(1, np.int8)))
            found.append((node.name, int(np.abs(zp.astype(np.int64)).max())))
    return found


def trt_cache_text(scales: dict[str, QdqScale], version: str = "8500") -> str:
    """TensorRT calibration-cache text (tensor: big-endian float32 scale in hex) from symmetric
    per-tensor scales, for the legacy implicit calibrator on TensorRT < 10."""
    lines = [f"TRT-{version}-EntropyCalibration2"]
    for name, info in scales.items():
        scale = info["scale"]
        if isinstance(scale, list):
            continue  # per-channel (weights): not part of an activation cache
        lines.append(f"{name}: {np.array(scale, '>f4').tobytes().hex()}")
    return "\n".join(lines) + "\n"


def latency_ms(path: Path, batch: np.ndarray, repeats: int = 7, threads: int = 0) -> float:
    """Median wall time of one run over `batch` in ONNX Runtime (CPU), after a warm-up run."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: batch}
    sess.run(None, feed)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def choose_for_ort(s8: Path, u8: Path, batch: np.ndarray, s8_exact: bool = True
                   ) -> dict[str, float | int | str]:
    """Measure both INT8 variants here; the faster one serves ONNX Runtime. `s8_exact`: False
    where ONNX Runtime computes s8 x s8 inexactly on this CPU (x86 without VNNI): the u8
    variant, made in this CPU's form, serves whatever the times."""
    t_s8, t_u8 = latency_ms(s8, batch), latency_ms(u8, batch)
    uses = "int8-u8" if t_u8 <= t_s8 or not s8_exact else "int8"
    return {"int8_ms": round(t_s8, 3), "int8-u8_ms": round(t_u8, 3),
            "onnxruntime_uses": uses, "batch": len(batch)}

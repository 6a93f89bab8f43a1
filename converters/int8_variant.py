"""An INT8 variant of an FP32 ONNX file: calibration's Q/DQ quantization, and for ONNX Runtime
the graph rewrites around it (converters/rewrites/).

TensorRT's variant is the quantized graph as it is (TensorRT picks its own layouts and fuses
from the Q/DQ placement). ONNX Runtime's CPU kernels want a different graph: the U-Net's
pixel-shuffle ConvTransposes as Conv 1x1 + DepthToSpace (no integer ConvTranspose on the CPU),
skip joins without a Concat, the data moves channels-last, Inception's average pools after
their 1x1 convolutions, and, after quantization, the pixels read as the first quantized tensor.
Each rewrite is its own module in converters/rewrites/ and says what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgecrystal.calibration.quantize import quantize

from .rewrites.concat_split import convs_without_concat
from .rewrites.input_fold import pixels_read_as_quantized
from .rewrites.layout import channels_last_data_moves
from .rewrites.pooling import pools_after_pointwise_convs
from .rewrites.upsampling import alias_cached_ranges, conv_transpose_to_depth_to_space

# The ONNX Runtime rewrites, by the names `int8_variant(skip=...)` takes (for measuring each).
REWRITES = ("upsampling", "concat_split", "channels_last", "pool_move", "input_fold")


def int8_variant(fp32: Path, out: Path, inputs: np.ndarray, target: str,
                 method: str = "entropy", ranges_cache: Path | None = None,
                 form: str | None = None, skip: frozenset[str] = frozenset()
                 ) -> dict[str, object]:
    """Write the INT8 Q/DQ model of `fp32` for `target` ("tensorrt" or "onnxruntime") to `out`
    and return calibration's summary plus how much each rewrite did. `ranges_cache`, `form`:
    as `calibration.quantize.quantize` takes them; `skip`: ONNX Runtime rewrites (REWRITES)
    left out, for measuring what each does."""
    if target != "onnxruntime":
        return quantize(fp32, out, inputs, target, method, ranges_cache=ranges_cache, form=form)
    cache = ranges_cache if ranges_cache is not None and ranges_cache.is_file() else None
    source, aliases, done = _for_onnxruntime(
        fp32, out.with_suffix(".shuffle.onnx"), _cached_tensors(cache) if cache else None, skip)
    if cache is not None:
        # A cache written before a rewrite has ranges for the tensors it replaced.
        alias_cached_ranges(cache, *aliases)
    try:
        summary = quantize(source, out, inputs, target, method, ranges_cache=ranges_cache,
                           form=form)
    finally:
        if source != fp32:
            source.unlink(missing_ok=True)
    if "input_fold" not in skip:
        done.update(_pixels_read_as_quantized(out))
    summary.update(done)
    return summary


def _for_onnxruntime(fp32: Path, out: Path, cached: set[str] | None,
                     skip: frozenset[str] = frozenset()
                     ) -> tuple[Path, list[dict[str, str]], dict[str, int]]:
    """`fp32` with its pixel-shuffle ConvTransposes rewritten, its concat -> conv joins split,
    its data moves made channels-last and its average pools moved after their 1x1
    convolutions, saved to `out`. Returns that path (`fp32` itself when nothing applies), the
    alias-giving rewrites' tensor aliases in the order applied, and how much each rewrite did
    (for the summary). `cached`: the tensors a ranges cache holds (None: calibrating now);
    concats split and pools move only when their new tensors will get ranges."""
    import onnx

    model = onnx.load(str(fp32))
    upsampled = {} if "upsampling" in skip else conv_transpose_to_depth_to_space(model)
    # Before the data moves: a concat split away is no longer one to write channels-last.
    joins = {} if "concat_split" in skip else convs_without_concat(model, ranged=cached)
    moved = {} if "channels_last" in skip else channels_last_data_moves(model)
    pools = [] if "pool_move" in skip else pools_after_pointwise_convs(model, ranged=cached)
    done = {"conv_transpose_as_depth_to_space": len(upsampled),
            "concats_split_into_convs": len(joins), "channels_last_tensors": len(moved),
            "average_pools_after_1x1": len(pools)}
    done = {what: count for what, count in done.items() if count}
    if not done:
        return fp32, [], {}
    onnx.save(model, str(out))
    return out, [upsampled, moved], done


def _pixels_read_as_quantized(path: Path) -> dict[str, int]:
    """rewrites/input_fold.py on the quantised file at `path`, saved when it applied."""
    import onnx

    model = onnx.load(str(path))
    if not pixels_read_as_quantized(model):
        return {}
    onnx.save(model, str(path))
    return {"input_read_as_quantized": 1}


def _cached_tensors(cache: Path) -> set[str]:
    """The tensors an ONNX Runtime calibration cache (JSON, {"data": {tensor: range}}) has
    ranges for."""
    data = json.loads(cache.read_text(encoding="utf-8")).get("data")
    return set(data) if isinstance(data, dict) else set()

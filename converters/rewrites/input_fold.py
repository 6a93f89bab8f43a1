"""The models' pixels read as their first quantised tensor, for ONNX Runtime's INT8.

A model takes uint8 pixels and scales them inside (x / 255 for the U-Net, x * 2 / 255 - 1 for
Inception). Quantised for ONNX Runtime, the scaling starts Cast -> QuantizeLinear (scale 1) ->
DequantizeLinear -> Mul -> QuantizeLinear: three operators over the whole input (ONNX
Runtime's Cast, QuantizeLinear, QLinearMul). When the scaled tensor's scale is the scaling
factor itself and its zero point 0 (what a calibration that saw black and white pixels gives),
that QuantizeLinear's output is the pixels again, byte for byte, and the DequantizeLinear after
it can read the input directly. Inception's "- 1" follows as its own quantised Add.

That the prologue is the identity is not assumed from its shape: it is evaluated for all 256
pixel values, in float32 as the Q/DQ graph defines it. Anything else (a calibration that
clipped the range, a scale that is not the factor) is left as it is. Measured interleaved in
one process (300 rounds): lite INT8 classifier 6.27 -> 6.02 ms; the finder unchanged within
noise (11.69 / 11.71 ms).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .graph import readers

if TYPE_CHECKING:
    import onnx

_LEVELS = np.arange(256, dtype=np.uint8)


def pixels_read_as_quantized(model: onnx.ModelProto) -> bool:
    """Rewrite, in place, a Q/DQ model (an onnx.ModelProto) whose uint8 input goes through
    Cast -> QuantizeLinear -> DequantizeLinear -> Mul/Add by constants -> QuantizeLinear
    that gives back every pixel value unchanged: the DequantizeLinears after that last
    QuantizeLinear read the input itself. True when it did."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    if len(graph.input) != 1 or graph.input[0].type.tensor_type.elem_type != TensorProto.UINT8:
        return False
    # Only scalars can be scales, zero points or the scaling's factors: the weights stay
    # unconverted.
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer
              if math.prod(init.dims) == 1}
    producers = {out: node for node in graph.node for out in node.output}
    consumers = readers(graph)

    def only_user(tensor: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(tensor, [])
        return users[0] if len(users) == 1 and users[0].op_type == op_type else None

    cast = only_user(graph.input[0].name, "Cast")
    first = cast and only_user(cast.output[0], "QuantizeLinear")
    back = first and only_user(first.output[0], "DequantizeLinear")
    if cast is None or first is None or back is None:
        return False
    into, out_of = _params(first, values), _params(back, values)
    if into is None or out_of is None:
        return False
    levels = _dequantize(_quantize(_LEVELS.astype(np.float32), into), out_of)
    chain, node = [cast, first, back], back
    while True:  # the scaling: Mul / Add by constants, up to the next QuantizeLinear
        users = consumers.get(node.output[0], [])
        if len(users) != 1:
            return False
        node = users[0]
        if node.op_type == "QuantizeLinear":
            break
        constant = _constant(node, values, producers)
        if node.op_type not in ("Mul", "Add") or constant is None:
            return False
        levels = levels * constant if node.op_type == "Mul" else levels + constant
        chain.append(node)
    last = _params(node, values)
    if last is None or not np.array_equal(_quantize(levels, last), _LEVELS):
        return False
    for user in consumers.get(node.output[0], []):
        for k, name in enumerate(user.input):
            if name == node.output[0]:
                user.input[k] = graph.input[0].name
    for gone in (*chain, node):
        graph.node.remove(gone)
    _drop_unused_constants(graph, {name for gone in (*chain, node) for name in gone.input})
    return True


def _drop_unused_constants(graph: onnx.GraphProto, names: set[str]) -> None:
    """The initializers among `names` no node reads any more (the removed nodes' scales, zero
    points and constants), and the DequantizeLinears that only fed removed nodes."""
    while True:
        used = {name for node in graph.node for name in node.input}
        orphans = [node for node in graph.node if node.op_type == "DequantizeLinear"
                   and node.output[0] in names and node.output[0] not in used]
        if not orphans:
            break
        for node in orphans:
            names.update(node.input)
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [init for init in graph.initializer if init.name in names - used]:
        graph.initializer.remove(init)


def _constant(node: onnx.NodeProto, values: dict[str, np.ndarray],
              producers: dict[str, onnx.NodeProto]) -> np.ndarray | None:
    """The float32 scalar a Mul/Add applies (a plain or a dequantised initializer), or None."""
    for name in node.input:
        if name in values:
            found = values[name]
        elif name in producers and producers[name].op_type == "DequantizeLinear" \
                and producers[name].input[0] in values:
            params = _params(producers[name], values)
            if params is None:
                return None
            found = _dequantize(values[producers[name].input[0]], params)
        else:
            continue
        return np.float32(found) if np.size(found) == 1 else None
    return None


def _params(node: onnx.NodeProto, values: dict[str, np.ndarray]) -> tuple[np.float32, int] | None:
    """A (De)QuantizeLinear's scale and zero point when both are scalar constants."""
    names = list(node.input[1:3])
    if not all(name in values and np.size(values[name]) == 1 for name in names):
        return None
    return np.float32(values[names[0]]), int(values[names[1]]) if len(names) > 1 else 0


def _quantize(x: np.ndarray, params: tuple[np.float32, int]) -> np.ndarray:
    """QuantizeLinear to uint8 as ONNX Runtime computes it (round half to even, saturate)."""
    scale, zero = params
    return np.clip(np.rint(np.asarray(x, np.float32) / scale) + zero, 0, 255).astype(np.uint8)


def _dequantize(q: np.ndarray, params: tuple[np.float32, int]) -> np.ndarray:
    scale, zero = params
    return (np.asarray(q).astype(np.int32) - zero).astype(np.float32) * scale

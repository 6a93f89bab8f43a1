"""The U-Net's data moves (upsampling shuffles and skip concatenations) in channels-last form,
for ONNX Runtime's INT8 on the CPU.

ONNX Runtime runs an INT8 convolution channels-last (NHWC) and wraps it in Transposes back to
the graph's NCHW. DepthToSpace and QLinearConcat have no NHWC kernel, so every U-Net level paid
a transpose of its skip tensor to NCHW, of the upsampled tensor back and forth, and an NCHW
DepthToSpace of uint8 (23 % of the lite INT8 finder's kernel time together, measured with
`edgecrystal profile`). Here each such op is written as its NHWC equivalent between a pair of
Transposes:

    DepthToSpace(x)      -> to NCHW( Reshape( Transpose( Reshape( to NHWC(x) ))))
    Concat(a, b, axis=1) -> to NCHW( Concat(to NHWC(a), to NHWC(b), axis=3) )

Same values (a permutation of the same bytes), and the framing Transposes meet the ones ONNX
Runtime puts around its NHWC convolutions and cancel: what remains moves contiguous runs of
channels. The TensorRT file keeps the plain ops (TensorRT picks its own layouts).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)

TO_NHWC = [0, 2, 3, 1]
TO_NCHW = [0, 3, 1, 2]


def channels_last_data_moves(model: onnx.ModelProto) -> dict[str, str]:
    """Rewrite, in place, every DCR DepthToSpace and every channel Concat (axis 1 of rank-4
    tensors) that joins a DepthToSpace's output, in `model` (an onnx.ModelProto), as above.
    Other Concats are left alone: between NHWC convolutions ONNX Runtime moves their
    Transposes away itself (renaming tensors as it does, which a cached calibration could not
    follow). Anything whose shapes shape inference cannot give is left as it is. Returns
    {new tensor: the tensor holding the same values}: the one's calibration range is the
    other's."""
    import onnx

    shapes = _static_shapes(onnx.shape_inference.infer_shapes(model))
    graph = model.graph
    aliases: dict[str, str] = {}
    nodes = list(graph.node)
    del graph.node[:]
    shuffled: set[str] = set()
    for node in nodes:
        if _is_dcr_shuffle(node) and node.output[0] in shapes:
            graph.node.extend(_shuffle_nhwc(node, shapes[node.output[0]], graph, aliases))
            shuffled.add(node.output[0])
        elif _is_channel_concat(node, shapes) and shuffled.intersection(node.input):
            graph.node.extend(_concat_nhwc(node, aliases))
        else:
            graph.node.append(node)
    logger.debug("%d data moves rewritten channels-last", len(aliases))
    return {new: _root(source, aliases) for new, source in aliases.items()}


def _shuffle_nhwc(node: onnx.NodeProto, out_shape: list[int], graph: onnx.GraphProto,
                  aliases: dict[str, str]) -> list[onnx.NodeProto]:
    """DepthToSpace (DCR, block k) over NHWC: channel (row * k + column) * C + c of pixel
    (h, w) goes to pixel (h * k + row, w * k + column), channel c. Split the channels into
    (row, column * C + c), swap row with w, merge: each move copies k * C contiguous bytes."""
    from onnx import helper, numpy_helper

    block = int(_attribute(node, "blocksize"))
    _, channels, height, width = out_shape
    name = node.name or node.output[0]
    split, merged = f"{name}/rows_shape", f"{name}/merged_shape"
    graph.initializer.extend([
        numpy_helper.from_array(np.array([0, 0, 0, block, -1], np.int64), split),
        numpy_helper.from_array(np.array([0, height, width, channels], np.int64), merged),
    ])
    nhwc, rows, swapped, shuffled = (f"{name}/{part}" for part in
                                     ("nhwc", "rows", "swapped", "shuffled"))
    for tensor in (nhwc, rows, swapped):
        aliases[tensor] = node.input[0]
    aliases[shuffled] = node.output[0]
    return [
        helper.make_node("Transpose", [node.input[0]], [nhwc], name=f"{name}/to_nhwc",
                         perm=TO_NHWC),
        helper.make_node("Reshape", [nhwc, split], [rows], name=f"{name}/split_rows"),
        helper.make_node("Transpose", [rows], [swapped], name=f"{name}/interleave",
                         perm=[0, 1, 3, 2, 4]),
        helper.make_node("Reshape", [swapped, merged], [shuffled], name=f"{name}/merge"),
        helper.make_node("Transpose", [shuffled], list(node.output), name=f"{name}/to_nchw",
                         perm=TO_NCHW),
    ]


def _concat_nhwc(node: onnx.NodeProto, aliases: dict[str, str]) -> list[onnx.NodeProto]:
    from onnx import helper

    name = node.name or node.output[0]
    moved, inputs = [], []
    for i, source in enumerate(node.input):
        nhwc = f"{name}/input{i}_nhwc"
        aliases[nhwc] = source
        inputs.append(nhwc)
        moved.append(helper.make_node("Transpose", [source], [nhwc], name=f"{name}/to_nhwc{i}",
                                      perm=TO_NHWC))
    joined = f"{name}/nhwc"
    aliases[joined] = node.output[0]
    return [*moved,
            helper.make_node("Concat", inputs, [joined], name=name, axis=3),
            helper.make_node("Transpose", [joined], list(node.output), name=f"{name}/to_nchw",
                             perm=TO_NCHW)]


def _is_dcr_shuffle(node: onnx.NodeProto) -> bool:
    mode = _attribute(node, "mode", b"DCR")
    return node.op_type == "DepthToSpace" and mode in (b"DCR", "DCR")


def _is_channel_concat(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> bool:
    if node.op_type != "Concat" or _attribute(node, "axis") not in (1, -3):
        return False
    return all(len(shapes.get(name, [])) == 4 for name in (*node.input, node.output[0]))


def _static_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Tensor name -> shape, for tensors whose every dimension but the batch is known (the
    batch is written 0: Reshape copies it)."""
    shapes = {}
    values = [*model.graph.value_info, *model.graph.output, *model.graph.input]
    for value in values:
        dims = value.type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else 0 for d in dims]
        if dims and all(sizes[1:]):
            shapes[value.name] = sizes
    return shapes


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _root(name: str, aliases: dict[str, str]) -> str:
    """The tensor of the original graph that a chain of aliases leads back to."""
    while name in aliases:
        name = aliases[name]
    return name

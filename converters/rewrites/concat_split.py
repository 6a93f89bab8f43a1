"""The U-Net's skip joins without a Concat, for ONNX Runtime's INT8 on the CPU.

Each U-Net decoder level is Concat(skip, upsampled) on the channel axis -> Conv 3x3. A
convolution is linear in its input channels, so it equals one convolution per concatenated
input, each with its slice of the weights (the bias goes with the first), summed:

    Conv(Concat(a, b), W, B)  ->  Add(Conv(a, W[:, :Ca], B), Conv(b, W[:, Ca:]))

The same function in float. In INT8 the join was ONNX Runtime's QLinearConcat, which moves
channels-last data a pixel's channels at a time (16 bytes at the top level) and requantises
each byte: 0.7 ms for the lite finder's top level alone, more than a float Concat of four times
the bytes. Two QLinearConvs and a QLinearAdd cost less than the Concat (docs/conversion.md).

What it costs in accuracy: the two partial sums are tensors of their own, each quantised to 8
bits at its own calibrated range before they are added (`verify` measures it). They need
calibration ranges, so build.py splits only when it calibrates or its cached ranges have them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .graph import readers

if TYPE_CHECKING:
    import onnx


def convs_without_concat(model: onnx.ModelProto,
                         ranged: set[str] | None = None) -> dict[str, list[str]]:
    """Rewrite, in place, every channel Concat (axis 1) of `model` (an onnx.ModelProto) whose
    only consumer is an ungrouped Conv with constant weights: one Conv per concatenated input,
    added. Returns {each split convolution's output: its new tensors (partial sums)}: these
    need calibration ranges. Concats whose inputs' channel counts shape inference cannot give
    are left alone. `ranged`: the tensors that will have ranges (a calibration cache's; None:
    calibrating now, all will): when any new tensor is not among them, nothing is rewritten
    and {} returned."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    channels = _channels(onnx.shape_inference.infer_shapes(model))
    consumers = readers(graph)
    outputs = {value.name for value in graph.output}
    # id(concat) -> (its Conv, input widths)
    splits: dict[int, tuple[onnx.NodeProto, list[int]]] = {}
    for node in graph.node:
        joins = node.op_type == "Concat" and node.output[0] not in outputs
        users = consumers.get(node.output[0], []) if joins else []
        widths = [channels.get(name, 0) for name in node.input]
        if len(users) == 1 and all(widths) and _splittable(node, users[0], widths, constants):
            splits[id(node)] = (users[0], widths)
    fresh = {conv.output[0]: _new_tensors(conv, len(widths)) for conv, widths in splits.values()}
    if ranged is not None and not all(ranged.issuperset(names) for names in fresh.values()):
        return {}
    split_convs = {id(conv) for conv, _ in splits.values()}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        if id(node) in split_convs:
            continue  # emitted at its concat's place
        if id(node) not in splits:
            graph.node.append(node)
            continue
        conv, widths = splits[id(node)]
        weight = numpy_helper.to_array(constants[conv.input[1]])
        graph.node.extend(_split(node, conv, widths, weight, graph))
    used = {name for node in graph.node for name in node.input}
    for conv, _ in splits.values():  # the whole weights, now sliced, unless shared
        if conv.input[1] not in used:
            graph.initializer.remove(constants[conv.input[1]])
    return fresh


def _new_tensors(conv: onnx.NodeProto, parts: int) -> list[str]:
    """A split convolution's partial sums, then the running sums before its output."""
    out = conv.output[0]
    return [f"{out}/part{i}" for i in range(parts)] + [f"{out}/sum{i}" for i in range(1, parts - 1)]


def _split(concat: onnx.NodeProto, conv: onnx.NodeProto, widths: list[int], weight: np.ndarray,
           graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """One Conv per input of `concat` with its slice of `conv`'s weights, then Adds."""
    from onnx import helper, numpy_helper

    name = conv.name or conv.output[0]
    parts = _new_tensors(conv, len(widths))[: len(widths)]
    has_bias = len(conv.input) > 2 and bool(conv.input[2])
    nodes, start = [], 0
    for i, (source, width) in enumerate(zip(concat.input, widths, strict=True)):
        sliced = f"{conv.output[0]}/weights{i}"
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(weight[:, start : start + width]), sliced))
        start += width
        bias = [conv.input[2]] if i == 0 and has_bias else []
        part = helper.make_node("Conv", [source, sliced, *bias], [parts[i]], name=f"{name}/part{i}")
        part.attribute.extend(conv.attribute)
        nodes.append(part)
    total = parts[0]
    for i in range(1, len(parts)):
        out = conv.output[0] if i == len(parts) - 1 else f"{conv.output[0]}/sum{i}"
        nodes.append(helper.make_node("Add", [total, parts[i]], [out], name=f"{name}/add{i}"))
        total = out
    return nodes


def _splittable(concat: onnx.NodeProto, conv: onnx.NodeProto, widths: list[int],
               constants: dict[str, onnx.TensorProto]) -> bool:
    """Whether `conv` (the concat's one consumer) reads the concat as its whole input, with
    constant weights whose input channels the concat's widths add up to."""
    from onnx import helper

    attributes = {a.name: helper.get_attribute_value(a) for a in concat.attribute}
    convolved = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if (conv.op_type != "Conv" or conv.input[0] != concat.output[0]
            or conv.input[1] not in constants or len(concat.input) < 2):
        return False
    bias_ok = len(conv.input) < 3 or not conv.input[2] or conv.input[2] in constants
    weight_dims = list(constants[conv.input[1]].dims)
    return (attributes.get("axis") in (1, -3) and bias_ok and convolved.get("group", 1) == 1
            and len(weight_dims) == 4 and weight_dims[1] == sum(widths))


def _channels(model: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> its channel count (axis 1) for rank-4 tensors where shape inference
    knows it."""
    found = {}
    for value in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            found[value.name] = int(dims[1].dim_value)
    return found

"""Inception's pooling branch with the pool after its 1x1 convolution, for ONNX Runtime's INT8.

Each Inception block has a branch AveragePool 3x3 / stride 1 -> Conv 1x1 (BatchNorm folded in)
-> ReLU. Both the pool (when padding is left out of the count, as Keras pools) and a 1x1
convolution are linear maps that act on different axes, and the pool's weights at every pixel
sum to 1 (so a bias passes through it unchanged): pooling after the convolution gives the same
values. It pools the convolution's 32 to 192 output channels instead of its 192 to 2048 input
channels, and ONNX Runtime's QLinearAveragePool is slow (19 % of the lite INT8 classifier's
kernel time; 7.2 -> 6.2 ms per image with the pools moved, 2 threads, measured interleaved).

The convolution's output before the pool is a tensor the calibration has not seen: it needs its
own range, so build.py moves the pools only when it calibrates or its cached ranges have it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .graph import readers

if TYPE_CHECKING:
    import onnx


def pools_after_pointwise_convs(model: onnx.ModelProto,
                                ranged: set[str] | None = None) -> list[str]:
    """Rewrite, in place, every AveragePool (stride 1, padding not counted) whose only consumer
    is a 1x1, ungrouped Conv with constant weights of `model` (an onnx.ModelProto): the Conv
    reads the pool's input and the pool writes the Conv's output. Returns the new tensors (the
    convolutions' outputs before their pools), which need calibration ranges of their own.
    `ranged`: the tensors that will have ranges (a calibration cache's; None: calibrating now,
    all will): when any new tensor is not among them, nothing is rewritten and [] returned."""
    graph = model.graph
    constants = {init.name: list(init.dims) for init in graph.initializer}
    consumers = readers(graph)
    moves: dict[int, onnx.NodeProto] = {}  # id(pool) -> the Conv to run in its place
    for node in graph.node:
        users = consumers.get(node.output[0], []) if node.op_type == "AveragePool" else []
        if len(users) == 1 and _movable(node, users[0], constants):
            moves[id(node)] = users[0]
    fresh = [_before_pool(conv) for conv in moves.values()]
    if ranged is not None and not ranged.issuperset(fresh):
        return []
    moved_convs = {id(conv) for conv in moves.values()}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        if id(node) in moved_convs:
            continue  # emitted at its pool's place
        conv = moves.get(id(node))
        if conv is None:
            graph.node.append(node)
            continue
        pool = node
        before_pool = _before_pool(conv)
        conv.input[0], conv.output[0], pool.input[0], pool.output[0] = (
            pool.input[0], before_pool, before_pool, conv.output[0])
        graph.node.extend([conv, pool])
    return fresh


def _before_pool(conv: onnx.NodeProto) -> str:
    """The name of a moved convolution's output, before the pool that now follows it."""
    return f"{conv.output[0]}/before_pool"


def _movable(pool: onnx.NodeProto, conv: onnx.NodeProto, constants: dict[str, list[int]]) -> bool:
    """Whether `conv` (the pool's one consumer) is a 1x1 convolution the pool commutes with."""
    pooled = _attributes(pool)
    convolved = _attributes(conv)
    if conv.op_type != "Conv" or conv.input[1] not in constants:
        return False
    kernel = list(convolved.get("kernel_shape", constants[conv.input[1]][2:]))
    return (
        conv.input[0] == pool.output[0]
        and (len(conv.input) < 3 or not conv.input[2] or conv.input[2] in constants)
        and kernel == [1, 1]
        and convolved.get("group", 1) == 1
        and all(v == 1 for v in convolved.get("strides", [1, 1]))
        and not any(convolved.get("pads", []))
        and all(v == 1 for v in pooled.get("strides", [1, 1]))
        # Padding counted in the average would weigh a bias by less than 1 at the borders.
        and pooled.get("count_include_pad", 0) == 0
        and pooled.get("ceil_mode", 0) == 0
    )


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}

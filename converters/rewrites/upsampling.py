"""The U-Net's 2x upsampling in a form ONNX Runtime runs in INT8 on the CPU.

A ConvTranspose whose kernel equals its stride (the U-Net's 2x2, stride 2) writes every output
pixel from exactly one input pixel: it is a 1x1 convolution to stride*stride*C_out channels
followed by DepthToSpace (a pixel shuffle). Same arithmetic, same result up to float rounding,
but ONNX Runtime's CPU provider has no integer ConvTranspose: a quantised ConvTranspose runs as
DequantizeLinear -> float ConvTranspose -> QuantizeLinear, with layout transposes around it
(17 % of the INT8 lite finder's time, measured with `edgecrystal profile`). The 1x1 Conv runs
as QLinearConv and DepthToSpace moves uint8 bytes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

logger = logging.getLogger(__name__)


def conv_transpose_to_depth_to_space(model: onnx.ModelProto) -> dict[str, str]:
    """Rewrite, in place, every ConvTranspose of `model` (an onnx.ModelProto) that is a pure
    pixel shuffle: kernel == strides, no padding, no dilation, one group, constant weights.
    Any other ConvTranspose is left as it is. Returns {new 1x1 Conv output: the ConvTranspose
    output it is a permutation of} for each rewrite: the two hold the same values, so one's
    calibration range is the other's."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    rewritten: dict[str, str] = {}
    nodes = list(graph.node)
    del graph.node[:]
    for node in nodes:
        blocks = _shuffle_block(node, weights)
        if blocks is None:
            graph.node.append(node)
            continue
        kernel = numpy_helper.to_array(weights[node.input[1]])  # C_in x C_out x k x k
        channels_in, channels_out = kernel.shape[0], kernel.shape[1]
        # DepthToSpace (DCR) reads channel (row * k + column) * C_out + c into pixel (row,
        # column) of channel c's k x k block.
        conv_kernel = kernel.transpose(2, 3, 1, 0).reshape(blocks * blocks * channels_out,
                                                           channels_in, 1, 1)
        prefix = node.name or node.output[0]
        conv_inputs = [node.input[0], f"{prefix}/shuffle_weights"]
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(conv_kernel), conv_inputs[1]))
        if len(node.input) > 2 and node.input[2]:
            bias = numpy_helper.to_array(weights[node.input[2]])
            conv_inputs.append(f"{prefix}/shuffle_bias")
            graph.initializer.append(numpy_helper.from_array(
                np.tile(bias, blocks * blocks).astype(bias.dtype), conv_inputs[2]))
        graph.node.append(helper.make_node("Conv", conv_inputs, [f"{prefix}/shuffle_depth"],
                                           name=f"{prefix}/shuffle_conv", kernel_shape=[1, 1]))
        graph.node.append(helper.make_node("DepthToSpace", [f"{prefix}/shuffle_depth"],
                                           list(node.output), name=f"{prefix}/shuffle",
                                           blocksize=blocks, mode="DCR"))
        rewritten[f"{prefix}/shuffle_depth"] = node.output[0]
    _drop_unused_initializers(graph)
    logger.debug("rewrote %d ConvTranspose nodes as Conv + DepthToSpace", len(rewritten))
    return rewritten


def alias_cached_ranges(cache: Path, *aliases: dict[str, str]) -> int:
    """Give each new tensor of each `aliases` map the calibration range of the tensor it
    permutes, in an ONNX Runtime calibration cache (JSON, {"data": {tensor: range}}) written
    before the rewrite existed, so a rebuild from cached ranges (no images at hand) quantises
    the 1x1 Conv too instead of leaving it in float. The maps are applied in the order given (a
    later rewrite's sources may be an earlier one's new tensors). Returns how many ranges were
    added."""
    import json

    content = json.loads(cache.read_text(encoding="utf-8"))
    ranges = content.get("data")
    if not isinstance(ranges, dict):
        return 0
    added = 0
    for new, original in (pair for mapping in aliases for pair in mapping.items()):
        if new not in ranges and original in ranges:
            ranges[new] = ranges[original]
            added += 1
    if added:
        cache.write_text(json.dumps(content), encoding="utf-8")
    return added


def _shuffle_block(node: onnx.NodeProto, weights: dict[str, onnx.TensorProto]) -> int | None:
    """The block size when `node` is a ConvTranspose that is a pixel shuffle, else None."""
    from onnx import helper

    if node.op_type != "ConvTranspose" or node.input[1] not in weights:
        return None
    if len(node.input) > 2 and node.input[2] and node.input[2] not in weights:
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attributes.get("kernel_shape", weights[node.input[1]].dims[2:]))
    strides = list(attributes.get("strides", [1] * len(kernel)))
    square = len(kernel) == 2 and kernel[0] == kernel[1] and kernel == strides and kernel[0] > 1
    plain = (
        attributes.get("group", 1) == 1
        and not any(attributes.get("pads", []))
        and not any(attributes.get("output_padding", []))
        and all(d == 1 for d in attributes.get("dilations", [1, 1]))
        and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID", "NOTSET", "VALID")
        and "output_shape" not in attributes
    )
    return int(kernel[0]) if square and plain else None


def _drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)

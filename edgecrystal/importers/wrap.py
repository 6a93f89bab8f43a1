"""Graph surgery with onnx.helper: put the project's contract around a foreign ONNX model.

The project's contract (docs/design.md): a model takes uint8 NHWC RGB pixels named "pixels" with
a dynamic batch, and does its own scaling. A model from elsewhere usually takes float NCHW input
normalised outside the model (PyTorch's `(x / 255 - mean) / std`), and may end in logits. The
wrapper adds, in front of the model's own first node:

    pixels (uint8 N,S,S,3) -> Cast float -> x * scale + offset (per channel, R,G,B)
        -> [Gather 2,1,0 on the channel axis: --bgr] -> [Transpose to N,3,S,S: --layout nchw]
        -> [Cast to the model's float type] -> the model's original input

and behind its output a Softmax (classifier logits) or Sigmoid (finder logits) where the model
does not end in probabilities, and an Identity/Transpose to the contract's output name and
layout. The model's own nodes and weights are not touched: the original input tensor becomes an
internal tensor fed by the new nodes, so every consumer inside the graph keeps working.

Imports onnx (the train extra, like build-engines); never TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import UsageError
from ..interface import CLASSIFIER_OUTPUT, FINDER_OUTPUT, INPUT_NAME

if TYPE_CHECKING:  # onnx is loaded inside the functions that need it
    import onnx

PREFIX = "edgecrystal_import/"
BATCH_DIM = "batch"
# Softmax over a 2-D output and Transpose/Gather/Cast all exist unchanged from opset 13, the
# oldest opset the FP16 converter and the Q/DQ quantizer handle; older models are upgraded.
MIN_OPSET = 13
LAYOUTS = ("nchw", "nhwc")


@dataclass(frozen=True)
class Normalisation:
    """What the model expects its input to be, from pixels p in 0..255 (channel order R,G,B):
    (p * unit - mean) / std, with unit = 1/255 when mean and std are given in 0..1 units."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    layout: str = "nchw"
    bgr: bool = False

    @property
    def pixel_units(self) -> str:
        """"0..1" when every mean and std is at most 1 (PyTorch/timm style), else "0..255"
        (Caffe style, e.g. mean 123.68,116.78,103.94 std 1)."""
        small = all(v <= 1.0 for v in (*self.mean, *self.std))
        return "0..1" if small else "0..255"

    @property
    def scale(self) -> np.ndarray:
        unit = 1.0 / 255.0 if self.pixel_units == "0..1" else 1.0
        return np.array([unit / s for s in self.std], np.float32)

    @property
    def offset(self) -> np.ndarray:
        return np.array([-m / s for m, s in zip(self.mean, self.std, strict=True)], np.float32)

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """The same normalisation by hand in numpy (the reference the wrapped model is checked
        against): uint8 N,H,W,3 RGB -> what the original model takes."""
        x = pixels.astype(np.float32) * self.scale + self.offset
        if self.bgr:
            x = x[..., ::-1]
        if self.layout == "nchw":
            x = np.transpose(x, (0, 3, 1, 2))
        return np.ascontiguousarray(x)

    def as_dict(self) -> dict[str, object]:
        return {"mean": list(self.mean), "std": list(self.std), "layout": self.layout,
                "bgr": self.bgr, "pixel_units": self.pixel_units,
                "scale": [float(v) for v in self.scale], "offset": [float(v) for v in self.offset]}


def parse_triple(text: str, what: str) -> tuple[float, float, float]:
    """"0.485,0.456,0.406" -> a 3-tuple; a bad list is a one-line UsageError."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise UsageError(f"--{what} expects three numbers R,G,B, got {text!r}") from None
    if len(values) != 3:
        raise UsageError(f"--{what} expects three numbers R,G,B, got {text!r}")
    if what.endswith("std") and any(v <= 0 for v in values):
        raise UsageError(f"--{what} values must be positive, got {text!r}")
    return values


@dataclass(frozen=True)
class Signature:
    """The one input and the one output of a model, as declared in its graph."""

    input_name: str
    input_dims: tuple[int | str | None, ...]
    input_elem_type: int
    output_name: str
    output_dims: tuple[int | str | None, ...]
    opset: int


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str | None, ...]:
    out: list[int | str | None] = []
    for dim in value.type.tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            out.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            out.append(dim.dim_param)
        else:
            out.append(None)
    return tuple(out)


def signature(model: onnx.ModelProto) -> Signature:
    """Input and output of `model`; more than one of either is a UsageError."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    if len(inputs) != 1:
        names = ", ".join(v.name for v in inputs) or "none"
        raise UsageError(f"the model has {len(inputs)} inputs ({names}); edgecrystal imports "
                         "models with one image input")
    if len(model.graph.output) != 1:
        names = ", ".join(v.name for v in model.graph.output)
        raise UsageError(f"the model has {len(model.graph.output)} outputs ({names}); export "
                         "it with the scores (classifier) or the mask (finder) as its only output")
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                default=0)
    return Signature(inputs[0].name, _dims(inputs[0]), inputs[0].type.tensor_type.elem_type,
                     model.graph.output[0].name, _dims(model.graph.output[0]), opset)


def spatial_size(sig: Signature, layout: str, asked: int | None) -> int:
    """The square input size: the graph's static H and W, or `asked` when they are dynamic."""
    if len(sig.input_dims) != 4:
        raise UsageError(f"input {sig.input_name} has shape {_show(sig.input_dims)}; an image "
                         "model takes 4-D input (batch, channels, height, width or NHWC)")
    channels, height, width = ((sig.input_dims[1], sig.input_dims[2], sig.input_dims[3])
                               if layout == "nchw" else
                               (sig.input_dims[3], sig.input_dims[1], sig.input_dims[2]))
    if isinstance(channels, int) and channels != 3:
        other = "nhwc" if layout == "nchw" else "nchw"
        raise UsageError(f"input {sig.input_name} {_show(sig.input_dims)} has {channels} "
                         f"channels in --layout {layout}; it needs 3 (is the layout {other}?)")
    static = [d for d in (height, width) if isinstance(d, int)]
    if len(static) == 2 and height != width:
        raise UsageError(f"input {sig.input_name} is {height}x{width}; edgecrystal feeds square "
                         "crops (export the model with a square input)")
    if static:
        if asked is not None and asked != static[0]:
            raise UsageError(f"--input-size {asked} does not match the model's fixed input "
                             f"size {static[0]}")
        return int(static[0])
    if asked is None:
        raise UsageError(f"input {sig.input_name} {_show(sig.input_dims)} has no fixed size; "
                         "give --input-size N")
    return int(asked)


def _show(dims: tuple[int | str | None, ...]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """Models older than opset 13 are converted (the quantizer and FP16 converter need 13)."""
    import onnx
    from onnx import version_converter

    sig = signature(model)
    if sig.opset >= MIN_OPSET:
        return model
    try:
        upgraded = version_converter.convert_version(model, MIN_OPSET)
        onnx.checker.check_model(upgraded)
    except Exception as exc:  # onnx raises its own types from C++
        raise UsageError(f"the model's opset {sig.opset} could not be upgraded to "
                         f"{MIN_OPSET}: {str(exc).splitlines()[0] if str(exc) else exc}; "
                         f"re-export it with opset {MIN_OPSET} or newer") from None
    return upgraded


def wrap(model: onnx.ModelProto, norm: Normalisation, size: int, role: str, head: str,
         class_order: list[int] | None = None) -> onnx.ModelProto:
    """A copy of `model` that takes "pixels" uint8 [batch,size,size,3] and gives the role's
    output: "scores" [batch, classes] or "mask" [batch,size,size,1].

    head: "none" (the output already is probabilities), "softmax" or "sigmoid" (added).
    For the finder, an NCHW [N,1,S,S] output is transposed to [N,S,S,1]. class_order: the
    model's output column for each of the bundle's classes (a Gather), when they differ."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(model)
    graph = wrapped.graph
    sig = signature(wrapped)
    original_input = next(v for v in graph.input if v.name == sig.input_name)
    graph.input.remove(original_input)
    float_type = sig.input_elem_type
    identity = bool(np.all(norm.scale == 1.0) and np.all(norm.offset == 0.0))
    if float_type == TensorProto.UINT8 and not identity:
        raise UsageError(f"input {sig.input_name} takes uint8 pixels: give --mean 0,0,0 "
                         "--std 1,1,1 (the model scales them itself)")
    if float_type not in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE,
                          TensorProto.UINT8):
        raise UsageError(f"input {sig.input_name} is of type "
                         f"{TensorProto.DataType.Name(float_type)}; the importer wraps models "
                         "with a float (or uint8) image input")
    graph.input.insert(0, helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.UINT8, [BATCH_DIM, size, size, 3]))

    def name(tail: str) -> str:
        return PREFIX + tail

    graph.initializer.extend([
        numpy_helper.from_array(norm.scale.reshape(1, 1, 1, 3), name("scale")),
        numpy_helper.from_array(norm.offset.reshape(1, 1, 1, 3), name("offset")),
    ])
    front = [
        helper.make_node("Cast", [INPUT_NAME], [name("float")], to=TensorProto.FLOAT,
                         name=name("cast")),
        helper.make_node("Mul", [name("float"), name("scale")], [name("scaled")],
                         name=name("mul_scale")),
        helper.make_node("Add", [name("scaled"), name("offset")], [name("normalised")],
                         name=name("add_offset")),
    ]
    last = name("normalised")
    if norm.bgr:
        graph.initializer.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64),
                                                         name("bgr_order")))
        front.append(helper.make_node("Gather", [last, name("bgr_order")], [name("bgr")],
                                      axis=3, name=name("to_bgr")))
        last = name("bgr")
    if norm.layout == "nchw":
        front.append(helper.make_node("Transpose", [last], [name("nchw")], perm=[0, 3, 1, 2],
                                      name=name("to_nchw")))
        last = name("nchw")
    # The last front node writes the original input's name: the model's nodes read it as before.
    front.append(helper.make_node("Cast", [last], [sig.input_name], to=float_type,
                                  name=name("to_model_type")))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(front + nodes)

    graph.output.remove(graph.output[0])
    graph.node.extend(_head_nodes(sig, role, head, name, class_order))
    if class_order is not None:
        graph.initializer.append(numpy_helper.from_array(np.array(class_order, np.int64),
                                                         name("class_order")))
    if role == "classifier":
        graph.output.append(helper.make_tensor_value_info(
            CLASSIFIER_OUTPUT, TensorProto.FLOAT, [BATCH_DIM, None]))
    else:
        graph.output.append(helper.make_tensor_value_info(
            FINDER_OUTPUT, TensorProto.FLOAT, [BATCH_DIM, size, size, 1]))
    # Shapes inferred for the old input/output no longer hold; onnx re-infers them on load.
    del graph.value_info[:]
    onnx.checker.check_model(wrapped)
    return wrapped


def _head_nodes(sig: Signature, role: str, head: str, name: Callable[[str], str],
                class_order: list[int] | None = None) -> list[onnx.NodeProto]:
    """Output side: float32, the contract's layout, an added Softmax/Sigmoid, the contract name."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", [sig.output_name], [name("out_float")],
                              to=TensorProto.FLOAT, name=name("out_cast"))]
    last = name("out_float")
    if role == "classifier":
        # [N, C] or [N, C, 1, 1] (a conv head): flatten to [N, C] so Softmax works on classes.
        nodes.append(helper.make_node("Flatten", [last], [name("flat")], axis=1,
                                      name=name("flatten")))
        last = name("flat")
        if head == "softmax":
            nodes.append(helper.make_node("Softmax", [last], [name("softmax")], axis=1,
                                          name=name("softmax")))
            last = name("softmax")
        if class_order is not None:
            nodes.append(helper.make_node("Gather", [last, name("class_order")],
                                          [name("reordered")], axis=1,
                                          name=name("bundle_class_order")))
            last = name("reordered")
        nodes.append(helper.make_node("Identity", [last], [CLASSIFIER_OUTPUT],
                                      name=name("scores")))
        return nodes
    if head == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", [last], [name("sigmoid")],
                                      name=name("sigmoid")))
        last = name("sigmoid")
    layout = finder_output_layout(sig.output_dims)
    if layout == "nchw":
        nodes.append(helper.make_node("Transpose", [last], [FINDER_OUTPUT], perm=[0, 2, 3, 1],
                                      name=name("mask_nhwc")))
    elif layout == "nhw":
        shape = name("mask_shape")
        nodes.append(helper.make_node("Constant", [], [shape], name=name("mask_shape_const"),
                                      value=numpy_helper.from_array(
                                          np.array([3], np.int64), name=shape + "_value")))
        nodes.append(helper.make_node("Unsqueeze", [last, shape], [FINDER_OUTPUT],
                                      name=name("mask_channel")))
    else:
        nodes.append(helper.make_node("Identity", [last], [FINDER_OUTPUT], name=name("mask")))
    return nodes


def finder_output_layout(dims: tuple[int | str | None, ...]) -> str:
    """Where the finder's one channel is: "nhwc" [N,H,W,1], "nchw" [N,1,H,W], "nhw" [N,H,W].
    Undeclared shapes are taken as NCHW when dim 1 is 1, else NHWC; the shapes are checked on
    real outputs after wrapping."""
    if len(dims) == 3:
        return "nhw"
    if len(dims) == 4:
        if dims[1] == 1 and dims[3] != 1:
            return "nchw"
        return "nhwc"
    return "nhwc"

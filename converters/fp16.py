"""FP16 ONNX variant: weights and activations in float16, the uint8 input and float32 outputs
kept (the runtime feeds and reads the same dtypes as the FP32 model).

Written here rather than taken from onnxconverter-common (not a dependency): the exported graphs
are plain (Conv, pooling, Concat, Relu, Sigmoid/Softmax, MatMul), so converting every float
initializer and constant, retargeting Cast-to-float nodes to float16 and casting each output
back to float32 is the whole job. A strongly typed TensorRT network then runs in FP16 because
the file says so; ONNX Runtime's CPU provider runs it too (it casts around ops that have no
float16 kernel), which is what the accuracy check uses.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

FP16_MAX = float(np.finfo(np.float16).max)


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of an FP32 ModelProto (inputs unchanged, outputs cast back to float32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    for i, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            graph.initializer[i].CopyFrom(_half_tensor(init, numpy_helper))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
            elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(_half_tensor(attr.t, numpy_helper))
    for vi in [*graph.value_info, *graph.input]:
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    # Each float output: rename the producer's tensor, cast it back under the output's name.
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        inner = f"{out.name}_fp16"
        for node in graph.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if o == out.name else o for o in node.input]
        graph.node.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT,
                                           name=f"{out.name}_to_fp32"))
    onnx.checker.check_model(model)
    return model


def _half_tensor(tensor: onnx.TensorProto, numpy_helper: ModuleType) -> onnx.TensorProto:
    values = numpy_helper.to_array(tensor).astype(np.float32)
    # Out-of-range weights would become inf; clip them to the largest float16.
    half = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
    return numpy_helper.from_array(half, tensor.name)


def convert_file(src: Path, dst: Path) -> None:
    import onnx

    from .onnx_files import save_model, set_metadata

    model = to_fp16(onnx.load(str(src)))
    set_metadata(model, {"precision": "fp16"})
    save_model(model, dst)

"""This CPU's INT8 matrix-multiply peak in ONNX Runtime, printed in GOP/s.

    python -m edgecrystal.bench.int8_peak [SIZE] [REPEATS]

Run as a child process by machine.measure_cpu_int8_peak_gops: the graph is built with the onnx
package, which the benchmarking process itself never imports.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import numpy as np


def measure(size: int, repeats: int) -> float:
    """Best GOP/s of one size x size x size MatMulInteger (uint8 x constant int8 -> int32)."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    session = ort.InferenceSession(matmul_integer_model(size, rng),
                                   providers=["CPUExecutionProvider"])
    feed = {"activations": rng.integers(0, 256, (size, size), dtype=np.uint8)}
    session.run(None, feed)  # warm the thread pool; the weights are packed at load
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def matmul_integer_model(size: int, rng: Any) -> bytes:
    """activations (uint8 size x size, zero point 128) @ constant int8 weights -> int32. The
    weights are an initializer, as a model's are: ONNX Runtime packs them once at load (fed as
    an input instead, the same multiply ran 5x slower here). They are 7-bit (-64..63, as
    quantize_static's reduce_range makes them): on an AVX2 CPU without VNNI ONNX Runtime sums
    u8 x s8 pairs in int16 (VPMADDUBSW), which saturates past 255 * 64 * 2, so full-range
    weights would give other products there; the kernel, and so the time, is the same."""
    from onnx import TensorProto, helper, numpy_helper

    weights = rng.integers(-64, 64, (size, size), dtype=np.int8)
    initializers = [numpy_helper.from_array(weights, "weights"),
                    numpy_helper.from_array(np.array(128, np.uint8), "activation_zero_point"),
                    numpy_helper.from_array(np.array(0, np.int8), "weight_zero_point")]
    node = helper.make_node("MatMulInteger", ["activations", "weights", "activation_zero_point",
                                              "weight_zero_point"], ["product"])
    graph = helper.make_graph(
        [node], "int8_peak",
        [helper.make_tensor_value_info("activations", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("product", TensorProto.INT32, [size, size])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # ONNX Runtime >= 1.16 reads IR 8
    return model.SerializeToString()


def main(argv: list[str]) -> int:
    size = int(argv[0]) if argv else 1024
    repeats = int(argv[1]) if len(argv) > 1 else 5
    print(f"{measure(size, repeats):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

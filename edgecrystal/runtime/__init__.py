"""Inference backends behind one interface (load once, infer, close).

Nothing here imports TensorFlow, Keras or ONNX: only numpy, onnxruntime, and TensorRT with
cuda-python (or pycuda) for the TensorRT runner, each imported inside the runner that needs it.
"""

from .base import Runner, TensorInfo

__all__ = ["Runner", "TensorInfo"]

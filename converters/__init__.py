"""Keras -> ONNX, ONNX precision variants (FP16, INT8 Q/DQ), ONNX -> TensorRT engines, and the
engine manifest. Heavy libraries (TensorFlow, tf2onnx, onnx, tensorrt) load inside functions."""

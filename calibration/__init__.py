"""INT8 calibration: choosing calibration images, explicit Q/DQ quantization (every TensorRT from
8.5 to 11, and ONNX Runtime), the calibration record, and the legacy implicit calibrator for
TensorRT < 10. Heavy libraries load inside functions."""

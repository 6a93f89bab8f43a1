"""INT8 calibration: choosing calibration images (select), computing ranges and writing explicit
Q/DQ models (quantize: every TensorRT from 8.5 to 11, and ONNX Runtime), the INT8 accuracy gate
(gate), and the legacy implicit calibrator for TensorRT < 10 (trt_calibrator). The graph rewrites
for ONNX Runtime are converters/rewrites/. Heavy libraries load inside functions."""

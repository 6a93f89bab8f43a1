"""ONNX graph rewrites that make the INT8 variant fast in ONNX Runtime on the CPU: the U-Net's
upsampling as Conv 1x1 + DepthToSpace (upsampling), skip joins split into convolutions
(concat_split), data moves channels-last (layout), average pools after their 1x1 convolutions
(pooling), the pixels read as the first quantized tensor (input_fold). Each keeps the model's
function; converters/int8_variant.py applies them around calibration's quantization. They need
only onnx (imported inside functions)."""

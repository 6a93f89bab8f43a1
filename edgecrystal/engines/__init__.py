"""TensorRT engines from ONNX files: the one place that imports tensorrt (`load_tensorrt`), the
CUDA device's identity (cuda-python, pycuda as the fallback), engine folders and their
manifests (engine.json), building a plan, and finding / keeping / rebuilding the engine of a
bundle's model for this machine.

TensorFlow-free by rule: nothing here imports TensorFlow, Keras, tf2onnx, training, Keras export
or calibration image selection, so the runtime and the daemon may use all of it. tensorrt and
the CUDA bindings load inside functions. converters.build (Keras -> ONNX -> variants) calls in
here for its engine step; nothing here calls converters.
"""

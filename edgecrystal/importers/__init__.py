"""Bringing models trained elsewhere into a bundle: ONNX from any framework (onnx_import, with
the graph surgery in wrap) and TensorFlow SavedModels such as MARCO's (savedmodel)."""

"""The names every part of edgecrystal agrees on, defined once: the models' tensor names (Keras
builders, the ONNX export, the fixtures, calibration, TensorRT builds and runners), the precision
variants a bundle can hold, and the inference backends. Standard library only: anything may
import this."""

from __future__ import annotations

# Every model takes uint8 NHWC pixels under this name; scaling is inside the model.
INPUT_NAME = "pixels"
FINDER_OUTPUT = "mask"
CLASSIFIER_OUTPUT = "scores"
CRYSTALS_OUTPUT = "crystals"
MODEL_OUTPUTS = {"finder": FINDER_OUTPUT, "classifier": CLASSIFIER_OUTPUT,
                 "crystals": CRYSTALS_OUTPUT}
# Models whose output is a probability map (a mask), not class scores: compared, gated and
# verified by the pixels they mark.
MAP_MODELS: tuple[str, ...] = ("finder", "crystals")

# Precision variants, in the order they are built (fp32 is the source of the others).
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")

# Backends that serve (the daemon, `score`); `auto` chooses between them at start-up.
RUNTIME_BACKENDS: tuple[str, ...] = ("onnxruntime", "onnxruntime-trt", "tensorrt")
BACKEND_CHOICES: tuple[str, ...] = ("auto", *RUNTIME_BACKENDS)
# The Keras reference: bench and accuracy comparisons only, never serving.
REFERENCE_BACKEND = "keras"

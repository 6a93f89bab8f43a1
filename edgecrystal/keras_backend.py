"""The Keras backend: the reference every other backend is compared against (`bench --backend
keras`, `verify`, `evaluate` of a bundle without ONNX variants), run through the same
`Pipeline` as the deployed backends (session.open_pipeline).

It imports TensorFlow (when a runner activates), so it lives outside edgecrystal.runtime and
the session does not import it: the runtime path never imports Keras (an import contract,
.importlinter, checks it, indirect imports included). `plug()` hands `open_keras` to the session;
the commands that offer the reference call it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .bundle import Bundle
from .errors import BackendError
from .interface import INPUT_NAME, REFERENCE_BACKEND
from .runtime.base import Runner, TensorInfo
from .runtime.select import Selection, needs_finder
from .session import plug_backend


class KerasRunner(Runner):
    """One Keras model; loaded (TensorFlow imported) when activated."""

    backend = REFERENCE_BACKEND

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path))
        self.model: Any = None

    def _activate_impl(self) -> None:
        from .models import load_model

        self.model = load_model(self.path)
        shape = tuple(None if d is None else int(d) for d in self.model.input_shape)
        self.inputs = [TensorInfo(self.model.input_names[0] if hasattr(self.model, "input_names")
                                  else INPUT_NAME, shape, np.dtype(np.uint8))]
        out_shape = tuple(None if d is None else int(d) for d in self.model.output_shape)
        self.outputs = [TensorInfo("output", out_shape, np.dtype(np.float32))]

    def _deactivate_impl(self) -> None:
        self.model = None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feed.values()))
        # Calling the model directly (not predict) avoids building a tf.data pipeline per call,
        # which would dominate the latency of small batches and flatter the other backends.
        out = self.model(batch, training=False)
        return {"output": np.asarray(out, dtype=np.float32)}

    def describe(self) -> str:
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()})"


def open_keras(bundle: Bundle, precision: str) -> Selection:
    """The bundle's Keras models as runners (not loaded yet): FP32 only, the reference."""
    if precision != "fp32":
        raise BackendError(f"the {REFERENCE_BACKEND} reference runs fp32 only, not {precision}")
    # model_file raises the one-line BundleError of an imported or ONNX-only bundle.
    classifier = KerasRunner(bundle.model_file("classifier"))
    finder = KerasRunner(bundle.model_file("finder")) if needs_finder(bundle) else None
    crystals = (KerasRunner(bundle.model_file("crystals")) if "crystals" in bundle.runtime_models()
                else None)
    return Selection(REFERENCE_BACKEND, "fp32", classifier, finder,
                     "asked for (the Keras models the ONNX variants were exported from)",
                     crystals=crystals)


def plug() -> None:
    """Make `keras` a backend of session.open_pipeline in this process."""
    plug_backend(REFERENCE_BACKEND, open_keras)

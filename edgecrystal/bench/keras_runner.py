"""Keras runner: the reference the other backends are compared against (`bench --backend keras`).

It imports TensorFlow, so it lives here with the benchmark and not in edgecrystal.runtime: the
runtime never imports Keras (an import contract, .importlinter, checks it).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..interface import INPUT_NAME, REFERENCE_BACKEND
from ..runtime.base import Runner, TensorInfo


class KerasRunner(Runner):
    backend = REFERENCE_BACKEND

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(str(path))
        from ..models import load_model

        self.model: Any = load_model(self.path)
        shape = tuple(None if d is None else int(d) for d in self.model.input_shape)
        self.inputs = [TensorInfo(self.model.input_names[0] if hasattr(self.model, "input_names")
                                  else INPUT_NAME, shape, np.dtype(np.uint8))]
        out_shape = tuple(None if d is None else int(d) for d in self.model.output_shape)
        self.outputs = [TensorInfo("output", out_shape, np.dtype(np.float32))]

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batch = next(iter(feed.values()))
        # Calling the model directly (not predict) avoids building a tf.data pipeline per call,
        # which would dominate the latency of small batches and flatter the other backends.
        out = self.model(batch, training=False)
        return {"output": np.asarray(out, dtype=np.float32)}

    def describe(self) -> str:
        import keras

        return f"keras {keras.__version__} ({keras.backend.backend()})"

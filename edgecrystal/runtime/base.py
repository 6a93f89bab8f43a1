"""The Runner interface every backend implements (the shape Polygraphy uses).

A runner holds one loaded model. `infer` takes a feed (a dict of input name -> array, or a bare
array for single-input models) and returns every output by name; `predict` is the one-input,
one-output short form the pipeline uses. Arrays are cast to the model's input dtype here, so a
model exported with a uint8 or a float32 (0..255) input is fed the same pixels either way.
Batches larger than the runner's `max_batch` (a TensorRT optimisation profile) are split.

Loading is separate from making a runner (as in Polygraphy): `activate()` loads the model and
`deactivate()` frees it again, each a public method that checks the runner's state and calls
the backend's `_activate_impl` / `_deactivate_impl`. The first `infer` (or `input_size`, or
entering a `with` block) activates, so a runner that is chosen but never used (the parent of
`score --workers`, a Ray driver) costs nothing. A backend that must load at once to be chosen
at all (TensorRT: `--backend auto` falls back when an engine does not deserialize) loads in its
constructor and counts as active from there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from ..errors import BackendError


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int | None, ...]  # None where the dimension is dynamic (the batch)
    dtype: np.dtype[Any]


Feed = dict[str, np.ndarray] | np.ndarray


class Runner(ABC):
    """One loaded model on one backend. Use as a context manager or call close()."""

    backend: str = "?"  # "onnxruntime" | "tensorrt"
    # Largest batch one call may carry; None: no limit. Larger batches are split in `infer`.
    max_batch: int | None = None

    def __init__(self, path: str) -> None:
        self.path = path
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.closed = False
        self.active = False  # the model is loaded (inputs and outputs are known)

    # -------------------------------------------------------------- the interface
    @abstractmethod
    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch that fits max_batch; inputs already cast and contiguous."""

    def _activate_impl(self) -> None:  # noqa: B027 - optional hook
        """Load the model and fill `inputs` and `outputs` (runners that load in their
        constructor have nothing to do here)."""

    def _deactivate_impl(self) -> None:  # noqa: B027 - optional hook
        """Free what `_activate_impl` loaded."""

    def _close(self) -> None:  # noqa: B027 - optional hook
        """Free what the backend holds."""

    def describe(self) -> str:
        """One line: what runs this model and how (for logs and reports)."""
        return self.backend

    # -------------------------------------------------------------- shared behaviour
    def activate(self) -> None:
        """Load the model now (nothing when it is loaded already); a closed runner refuses."""
        if self.closed:
            raise BackendError(f"runner for {self.path} is closed")
        if not self.active:
            self._activate_impl()
            self.active = True

    def deactivate(self) -> None:
        """Free the loaded model; the next use loads it again."""
        if self.active:
            self.active = False
            self._deactivate_impl()

    def infer(self, feed: Feed) -> dict[str, np.ndarray]:
        self.activate()
        arrays = self._prepare(feed)
        n = next(iter(arrays.values())).shape[0]
        if self.max_batch is None or n <= self.max_batch:
            return self._run(arrays)
        parts = [
            self._run({k: v[i : i + self.max_batch] for k, v in arrays.items()})
            for i in range(0, n, self.max_batch)
        ]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Single input in, first output out."""
        return next(iter(self.infer(batch).values()))

    @property
    def input_size(self) -> int | None:
        """Square spatial size of an NHWC image input, when fixed."""
        self.activate()
        shape = self.inputs[0].shape if self.inputs else ()
        return shape[1] if len(shape) == 4 and shape[1] == shape[2] else None

    def close(self) -> None:
        if not self.closed:
            self.deactivate()
            self.closed = True
            self._close()

    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _prepare(self, feed: Feed) -> dict[str, np.ndarray]:
        if isinstance(feed, np.ndarray):
            if len(self.inputs) != 1:
                names = ", ".join(i.name for i in self.inputs)
                raise BackendError(f"{self.path} has inputs {names}: pass a dict, not one array")
            feed = {self.inputs[0].name: feed}
        out: dict[str, np.ndarray] = {}
        for info in self.inputs:
            if info.name not in feed:
                raise BackendError(f"{self.path}: input {info.name!r} missing from the feed")
            arr = np.asarray(feed[info.name])
            expect = info.shape[1:]
            if len(arr.shape) != len(info.shape) or any(
                e is not None and e != a for e, a in zip(expect, arr.shape[1:], strict=True)
            ):
                raise BackendError(
                    f"{self.path}: input {info.name!r} has shape {tuple(arr.shape)}, "
                    f"the model takes {tuple('N' if d is None else d for d in info.shape)}"
                )
            # Pixels are 0..255 either way: a float input holds the same values as uint8.
            out[info.name] = np.ascontiguousarray(arr, dtype=info.dtype)
        if len({a.shape[0] for a in out.values()}) > 1:
            raise BackendError(f"{self.path}: inputs disagree on the batch size")
        return out

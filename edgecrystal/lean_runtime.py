"""The one list of modules the runtime path must never load: the heavy frameworks (the daemon is
numpy, OpenCV and one inference backend) and edgecrystal's own training-side code.

Three checks read it: the daemon's `heavy_modules=` line at start (what really got loaded),
the `lean-runtime` forbidden contract in .importlinter (every import statement, inside functions
too; tests/test_engine_layer.py checks that its list is this one) and tests/test_engine_layer.py.
Standard library only: anything may import this."""

from __future__ import annotations

import sys
from collections.abc import Iterable

# Third-party packages, by their top-level name (import-linter forbids external packages only
# at that level).
HEAVY_PACKAGES: tuple[str, ...] = ("tensorflow", "keras", "tf2onnx", "onnx", "torch", "jax")
# edgecrystal's training side: Keras models and training, the Keras backend (bench, verify and
# evaluate plug it into the session), the Keras export, calibration image selection, the
# experiments and the converters (which export, quantize and gate bundles).
TRAINING_MODULES: tuple[str, ...] = (
    "edgecrystal.train",
    "edgecrystal.models",
    "edgecrystal.experiment",
    "edgecrystal.converters",
    "edgecrystal.keras_backend",
    "edgecrystal.calibration.select",
)
FORBIDDEN: tuple[str, ...] = HEAVY_PACKAGES + TRAINING_MODULES


def forbidden(name: str) -> str | None:
    """The entry of FORBIDDEN that module `name` falls under (itself or a parent), or None."""
    for entry in FORBIDDEN:
        if name == entry or name.startswith(entry + "."):
            return entry
    return None


def loaded_forbidden(modules: Iterable[str] | None = None) -> list[str]:
    """The FORBIDDEN entries of which something is loaded (in sys.modules unless given)."""
    names = sys.modules if modules is None else modules
    return sorted({entry for name in list(names) if (entry := forbidden(name)) is not None})

"""Training the finder and the classifier (Keras on TensorFlow). Imported only by the commands
that train, evaluate or run experiments; the runtime never loads it."""

from __future__ import annotations

from typing import Any

__all__ = ["train_classifier", "train_crystals", "train_finder"]


def train_finder(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from .finder import train_finder as run

    return run(*args, **kwargs)


def train_classifier(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from .classifier import train_classifier as run

    return run(*args, **kwargs)


def train_crystals(*args: Any, **kwargs: Any) -> dict[str, Any]:
    from .crystals import train_crystals as run

    return run(*args, **kwargs)

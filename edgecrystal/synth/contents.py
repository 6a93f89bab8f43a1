"""What is in the drop, by class, plus the things every drop may hold (bubbles, dust).

The class list is data: a label the generator has no painter for is a UsageError, and a data
set may ask for any subset of the known classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import UsageError
from . import crystals, other, precipitate
from .layers import GREY, Layers, circle, points_in

Painter = Callable[[np.random.Generator, Layers, np.ndarray, float], dict[str, str]]


def _clear(rng: np.random.Generator, layers: Layers, mask: np.ndarray,
           radius: float) -> dict[str, str]:
    return {"habit": "", "size": ""}


PAINTERS: dict[str, Painter] = {
    "clear": _clear,
    "crystals": crystals.draw,
    "precipitate": precipitate.draw,
    "other": other.draw,
}
KNOWN_CLASSES: tuple[str, ...] = tuple(PAINTERS)


def check_classes(classes: Sequence[str]) -> tuple[str, ...]:
    names = tuple(c.strip() for c in classes if c.strip())
    if not names:
        raise UsageError("no classes given (choose from " + ", ".join(KNOWN_CLASSES) + ")")
    unknown = [c for c in names if c not in PAINTERS]
    if unknown:
        raise UsageError(f"unknown class {', '.join(unknown)} "
                         f"(the generator draws {', '.join(KNOWN_CLASSES)})")
    if len(set(names)) != len(names):
        raise UsageError(f"class list repeats a name: {','.join(names)}")
    return names


def paint(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
          label: str) -> dict[str, str]:
    if label not in PAINTERS:
        raise UsageError(f"unknown class {label} (the generator draws "
                         f"{', '.join(KNOWN_CLASSES)})")
    return PAINTERS[label](rng, layers, mask, radius)


def bubbles(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> int:
    """Air bubbles: a thick dark ring with a bright centre, in any class."""
    if rng.random() > 0.22:
        return 0
    ring, hi = layers.scratch(), layers.scratch()
    n = int(rng.integers(1, 4))
    for c in points_in(rng, mask, n):
        r = radius * rng.uniform(0.04, 0.2)
        circle(ring, c, r, 255, max(2, int(r * rng.uniform(0.12, 0.3))))
        circle(hi, c, r * 0.55, 255)
    layers.add(ring, GREY, rng.uniform(0.5, 0.8), 0.8 * layers.scale)
    layers.add_glow(hi, rng.uniform(0.04, 0.1), 2.0 * layers.scale)
    return n


def dust(rng: np.random.Generator, layers: Layers, n: int) -> None:
    """Dust on the plate seal: a few specks anywhere in the image, in any class."""
    img = layers.scratch()
    everywhere = np.ones((layers.h, layers.w), bool)
    for c in points_in(rng, everywhere, n):
        circle(img, c, rng.uniform(0.6, 2.2) * layers.scale, int(rng.integers(60, 200)))
    layers.add(img, GREY, 0.6, 0.7 * layers.scale)

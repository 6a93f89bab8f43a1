"""What is in the drop, by class, plus the things every drop may hold (bubbles, dust, fibres,
edge reflections).

Mixed contents follow the scoring convention: any crystal makes a drop crystals, so a crystals
drop may also hold precipitate or a skin under its crystals, while the other classes never
hold a crystal. The class-free extras (`bubbles`, `clutter`, `dust`) are drawn from their own
random stream with the same odds in every class, so none of them gives a label away.

The class list is data: a label the generator has no painter for is a UsageError, and a data
set may ask for any subset of the known classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import UsageError
from . import crystals, other, precipitate
from .layers import GREY, Layers, circle, points_in, polyline

Painter = Callable[[np.random.Generator, Layers, np.ndarray, float], dict[str, str]]


def _clear(rng: np.random.Generator, layers: Layers, mask: np.ndarray,
           radius: float) -> dict[str, str]:
    return {"habit": "", "size": ""}


def _crystals(rng: np.random.Generator, layers: Layers, mask: np.ndarray,
              radius: float) -> dict[str, str]:
    """Crystals, in a quarter of the drops on top of precipitate and in some over a skin or
    oil droplets (crystals grow out of those too)."""
    under = rng.random()
    if under < 0.25:
        precipitate.draw(rng, layers, mask, radius, strength=float(rng.uniform(0.3, 0.9)))
    elif under < 0.33:
        other.draw(rng, layers, mask, radius, kind=str(rng.choice(["skin", "phase"])))
    painted = crystals.draw(rng, layers, mask, radius)
    return {**painted, "under": "precipitate" if under < 0.25 else "other" if under < 0.33
            else ""}


PAINTERS: dict[str, Painter] = {
    "clear": _clear,
    "crystals": _crystals,
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


def clutter(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> str:
    """What a clear drop is often not clear of, in any class: a fibre or two lying in the drop,
    a few dust specks, and a bright reflection along part of the drop's edge. Returns what was
    drawn (for the metadata)."""
    drawn = []
    if rng.random() < 0.25:
        img = layers.scratch()
        for start in points_in(rng, mask, int(rng.integers(1, 3))):
            steps = int(rng.integers(8, 30))
            turns = np.cumsum(rng.normal(0, 0.2, steps)) + rng.uniform(0, 2 * np.pi)
            step = radius * rng.uniform(0.02, 0.05)
            path = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), axis=0)
            polyline(img, path, int(rng.integers(120, 256)), 1 if rng.random() < 0.7 else 2,
                     closed=False)
        layers.add(img, GREY, rng.uniform(0.3, 0.8), 0.6 * layers.scale)
        drawn.append("fibre")
    if rng.random() < 0.3:
        img = layers.scratch()
        for c in points_in(rng, mask, int(rng.integers(1, 7))):
            circle(img, c, rng.uniform(0.8, 2.5) * layers.scale, int(rng.integers(100, 230)))
        layers.add(img, GREY, 0.7, 0.7 * layers.scale)
        drawn.append("specks")
    if rng.random() < 0.3:
        layers.add_glow(_edge_arc(rng, mask, radius, layers.scale), rng.uniform(0.05, 0.2))
        drawn.append("reflection")
    return "+".join(drawn)


def _edge_arc(rng: np.random.Generator, mask: np.ndarray, radius: float,
              scale: float) -> np.ndarray:
    """A bright band just inside part of the drop's edge (light reflected by the meniscus)."""
    import cv2

    d_in = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(mask)
    cy, cx = float(ys.mean()), float(xs.mean())
    h, w = mask.shape
    ang = np.arctan2(np.arange(h, dtype=np.float32)[:, None] - cy,
                     np.arange(w, dtype=np.float32)[None, :] - cx)
    centre = rng.uniform(-np.pi, np.pi)
    sector = np.cos(ang - np.float32(centre)) > np.float32(rng.uniform(0.3, 0.9))
    off = radius * rng.uniform(0.03, 0.12)
    width = max(1.0, radius * rng.uniform(0.01, 0.04), scale)
    # A drop that fills the frame has no edge: its distances overflow (and the band is 0).
    with np.errstate(over="ignore"):
        band = np.exp(-(((d_in - np.float32(off)) / np.float32(width)) ** 2))
    return (band * sector * mask).astype(np.float32)

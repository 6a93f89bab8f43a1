"""MARCO's "other": phase separation (oily droplets, some dark and solid), skin (wrinkled film
with dark folds), spherulites (radial urchins), junk (fibres, debris), dried drops (a cracked
crust) and dirt (large dark irregular lumps). Some of them, small spherulites and dense oil
droplets, look a little like precipitate on purpose: the real class boundary is fuzzy too."""

from __future__ import annotations

import numpy as np

from .fields import smooth_noise
from .layers import BROWN, GREY, Layers, circle, fill, line, points_in, polyline

KINDS = ("phase", "skin", "spherulites", "junk", "dried", "dirt")
_KIND_P = (0.2, 0.25, 0.15, 0.12, 0.13, 0.15)


def draw(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
         kind: str | None = None) -> dict[str, str]:
    kind = kind or str(rng.choice(KINDS, p=_KIND_P))
    {"phase": _phase, "skin": _skin, "spherulites": _spherulites, "junk": _junk,
     "dried": _dried, "dirt": _dirt}[kind](rng, layers, mask, radius)
    return {"habit": kind, "size": ""}


def _phase(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> None:
    """Oil droplets: dark-ringed discs with bright centres, sizes spread over a decade."""
    ring, core, hi = layers.scratch(), layers.scratch(), layers.scratch()
    n = int(rng.integers(8, 120))
    rmax = radius * rng.uniform(0.04, 0.16)
    weight = smooth_noise(rng, layers.h, layers.w, 4) ** 2
    for c in points_in(rng, mask, n, weight):
        r = max(rmax * rng.uniform(0.08, 1.0) ** 2, 1.2 * layers.scale)
        circle(core, c, r, 255)
        circle(ring, c, r, 255, max(1, int(r * 0.25)))
        circle(hi, c + r * 0.15, r * 0.4, 255)
    blur = 0.6 * layers.scale
    # Dense oil droplets look dark and solid (no bright centre), as in real phase separation.
    solid = rng.random() < 0.4
    layers.add(core, GREY, rng.uniform(0.4, 0.8) if solid else rng.uniform(0.02, 0.1), blur)
    layers.add(ring, BROWN if rng.random() < 0.5 else GREY, rng.uniform(0.4, 0.75), blur)
    layers.add_glow(hi, rng.uniform(0.03, 0.1), blur * 2)


def _skin(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> None:
    """A protein skin: a faint brownish sheet with a dark torn edge and folds (creases)."""
    import cv2

    from .drop import outline

    sheet, creases = layers.scratch(), layers.scratch()
    centre = points_in(rng, mask, 1)
    if len(centre) == 0:
        return
    c = centre[0]
    patch = outline(rng, c[0], c[1], radius * rng.uniform(0.5, 1.1), "blob", n=96)
    patch += rng.normal(0, radius * 0.015, patch.shape)  # a torn, ragged edge
    fill(sheet, patch, 255)
    polyline(creases, patch, 255, 2)
    region = cv2.erode(sheet, np.ones((3, 3), np.uint8)) > 0
    # Folds: wandering ridges, thin wrinkles or broad dark pleats (a thick, folded skin).
    broad = rng.random() < 0.5
    for start in points_in(rng, region, int(rng.integers(4, 20))):
        steps = int(rng.integers(6, 24))
        turns = np.cumsum(rng.normal(0, 0.18, steps)) + rng.uniform(0, 2 * np.pi)
        step = radius * rng.uniform(0.02, 0.05)
        path = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), axis=0)
        width = rng.uniform(2, 6) * layers.scale if broad else rng.uniform(1, 2.5)
        polyline(creases, path, int(rng.integers(120, 256)), max(1, int(width)),
                 closed=False)
    creases[~(sheet > 0)] = 0
    blur = 0.8 * layers.scale
    # Thick skins fold into dark ridges with a soft shadow beside them.
    shadow = cv2.GaussianBlur(creases, (0, 0), 4 * layers.scale)
    layers.add(sheet, BROWN if rng.random() < 0.6 else GREY, rng.uniform(0.05, 0.25), 2 * blur)
    layers.add(creases, BROWN if rng.random() < 0.6 else GREY, rng.uniform(0.35, 0.9), blur)
    layers.add(shadow, GREY, rng.uniform(0.0, 0.6), blur)


def _spherulites(rng: np.random.Generator, layers: Layers, mask: np.ndarray,
                 radius: float) -> None:
    """Radial urchins: many spokes from a dense core."""
    img = layers.scratch()
    few = rng.random() < 0.5
    n = int(rng.integers(1, 6) if few else rng.integers(8, 40))
    rmax = radius * (rng.uniform(0.08, 0.2) if few else rng.uniform(0.02, 0.06))
    for c in points_in(rng, mask, n):
        r = max(rmax * rng.uniform(0.5, 1.0), 3 * layers.scale)
        spokes = int(np.clip(r * 1.5, 12, 90))
        a = rng.uniform(0, 2 * np.pi, spokes)
        length = r * rng.uniform(0.5, 1.0, spokes)
        for ai, li in zip(a, length, strict=False):
            line(img, c, c + li * np.array([np.cos(ai), np.sin(ai)]), int(rng.integers(90, 220)))
        circle(img, c, r * 0.25, 230)
    layers.add(img, BROWN if rng.random() < 0.5 else GREY, rng.uniform(0.45, 0.8),
               0.6 * layers.scale)


def _junk(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> None:
    """Fibres (long wandering threads) and debris (dark irregular flakes)."""
    img = layers.scratch()
    for start in points_in(rng, mask, int(rng.integers(1, 4))):
        steps = int(rng.integers(8, 30))
        heading = rng.uniform(0, 2 * np.pi)
        turns = np.cumsum(rng.normal(0, 0.25, steps)) + heading
        step = radius * rng.uniform(0.03, 0.07)
        path = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), axis=0)
        polyline(img, path, int(rng.integers(150, 256)), int(rng.integers(1, 3)), closed=False)
    for c in points_in(rng, mask, int(rng.integers(2, 15))):
        k = int(rng.integers(4, 9))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = radius * rng.uniform(0.01, 0.05) * rng.uniform(0.4, 1.0, k)
        fill(img, c + np.stack([r * np.cos(a), r * np.sin(a)], 1), int(rng.integers(120, 256)))
    layers.add(img, GREY if rng.random() < 0.6 else BROWN, rng.uniform(0.5, 0.85),
               0.6 * layers.scale)


def _dried(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> None:
    """A dried drop: a mottled crust broken by a network of dark cracks."""
    import cv2

    crust, cracks = layers.scratch(), layers.scratch()
    crust[mask] = 255
    # Cracks wander (a straight spray from a point would read as needles).
    for start in points_in(rng, mask, int(rng.integers(6, 30))):
        steps = int(rng.integers(4, 14))
        turns = np.cumsum(rng.normal(0, 0.45, steps)) + rng.uniform(0, 2 * np.pi)
        step = radius * rng.uniform(0.02, 0.05)
        path = start + np.cumsum(step * np.stack([np.cos(turns), np.sin(turns)], 1), axis=0)
        polyline(cracks, path, int(rng.integers(150, 256)), int(rng.integers(1, 3)),
                 closed=False)
    mottle = smooth_noise(rng, layers.h, layers.w, int(rng.integers(10, 30)))
    crust_d = cv2.GaussianBlur(crust, (0, 0), 2 * layers.scale).astype(np.float32) / 255
    layers.add(crust_d * mottle, BROWN if rng.random() < 0.5 else GREY, rng.uniform(0.1, 0.35))
    layers.add(cracks, GREY, rng.uniform(0.5, 0.85), 0.6 * layers.scale)


def _dirt(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float) -> None:
    """Dirt: a few large dark lumps with ragged outlines (not facetted, not grainy)."""
    img = layers.scratch()
    for c in points_in(rng, mask, int(rng.integers(1, 6))):
        k = int(rng.integers(10, 24))
        a = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = radius * rng.uniform(0.03, 0.15) * rng.uniform(0.5, 1.0, k)
        fill(img, c + np.stack([r * np.cos(a), r * np.sin(a)], 1), int(rng.integers(150, 256)))
    layers.add(img, BROWN if rng.random() < 0.5 else GREY, rng.uniform(0.5, 0.9),
               1.2 * layers.scale)

"""Crystals at every scale and look: prisms, cubes, hexagonal plates, rods, rhombic bipyramids,
needle clusters and showers of microcrystals; one crystal alone or hundreds; scattered,
clustered, or grown against the drop edge; sharp or out of focus.

A transparent crystal in transmitted light shows mostly its edges: dark outlines, the faint
outline of the far face (drawn as the same polygon shifted, joined at the corners, which gives
the 3D look and the internal edges), side faces each in its own shade, a slightly darker or
tinted body, and a bright line where an edge refracts light. Real drops (the real-sample
photos) have every one of these at once: a single small facetted crystal in a large drop,
fields of cubes in a close-up, needle tangles, showers of specks that are tiny crystals.
"""

from __future__ import annotations

import numpy as np

from .layers import GREY, Layers, circle, fill, line, points_in, polyline

HABITS = ("prism", "cube", "plate", "rod", "rhombic", "needles", "shower")
_HABIT_P = (0.14, 0.18, 0.13, 0.1, 0.14, 0.15, 0.16)
SIZES = ("large", "medium", "small", "micro")
# Crystal length as a fraction of the drop radius, and how many appear, per size class.
_LENGTH = {"large": (0.15, 0.42), "medium": (0.07, 0.16), "small": (0.03, 0.07),
           "micro": (0.012, 0.03)}
_COUNT = {"large": (1, 5), "medium": (1, 12), "small": (2, 30), "micro": (30, 220)}
PLACEMENTS = ("scattered", "clustered", "edge")


def _rot(poly: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return poly @ np.array([[c, s], [-s, c]])


def _habit_polygon(rng: np.random.Generator, habit: str, length: float) -> np.ndarray:
    """Outline of one face of a crystal, centred on 0, before rotation."""
    if habit in ("prism", "cube"):
        w = length * (rng.uniform(0.8, 1.0) if habit == "cube" else rng.uniform(0.4, 0.9))
        return np.array([[-length, -w], [length, -w], [length, w], [-length, w]]) / 2
    if habit == "rod":
        w = length * rng.uniform(0.08, 0.22)
        tip = w * rng.uniform(0.0, 1.0)
        return np.array([[-length / 2, -w / 2], [length / 2 - tip, -w / 2], [length / 2, 0],
                         [length / 2 - tip, w / 2], [-length / 2, w / 2]])
    if habit == "plate":
        a = np.linspace(0, 2 * np.pi, 6, endpoint=False) + rng.uniform(0, np.pi / 3)
        squash = rng.uniform(0.55, 1.0)  # a plate seen tilted
        r = length / 2 * rng.uniform(0.85, 1.15, size=6)
        return np.stack([r * np.cos(a), r * np.sin(a) * squash], axis=1)
    # rhombic bipyramid seen from the side: a rhombus
    w = length * rng.uniform(0.3, 0.7)
    return np.array([[-length / 2, 0], [0, -w / 2], [length / 2, 0], [0, w / 2]])


def _size_for(rng: np.random.Generator, habit: str) -> str:
    if habit == "shower":
        return "micro"
    if habit == "cube":
        return str(rng.choice(SIZES[:3], p=[0.5, 0.4, 0.1]))
    return str(rng.choice(SIZES[:3], p=[0.45, 0.4, 0.15]))


def draw(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
         habit: str | None = None, size: str | None = None) -> dict[str, str]:
    habit = habit or str(rng.choice(HABITS, p=_HABIT_P))
    size = size or _size_for(rng, habit)
    # Contrast: most crystals are clear to see, some are faint (low birefringence, thin).
    contrast = float(rng.uniform(0.3, 0.55) if rng.random() < 0.25 else rng.uniform(0.55, 1.0))
    # Out of focus: the crystal sits above or below the focal plane (soft, lower contrast).
    focus = float(rng.uniform(2.0, 4.0)) if rng.random() < 0.15 else 1.0
    placement = str(rng.choice(PLACEMENTS, p=[0.45, 0.35, 0.2]))
    where = _where(rng, mask, radius, placement)
    if habit == "needles":
        _needles(rng, layers, where, radius, size, contrast, focus)
    else:
        _solids(rng, layers, where, radius, habit, size, contrast, focus, placement)
    return {"habit": habit, "size": size, "contrast": f"{contrast:.2f}"}


def _where(rng: np.random.Generator, mask: np.ndarray, radius: float,
           placement: str) -> np.ndarray:
    """The part of the drop the crystals grow in: all of it, or a band along its edge (crystals
    often nucleate at the meniscus and touch the drop's outline)."""
    if placement != "edge":
        return mask
    import cv2

    d_in = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    band = mask & (d_in < max(3.0, radius * rng.uniform(0.08, 0.2)))
    return band if band.any() else mask


def _centres(rng: np.random.Generator, layers: Layers, where: np.ndarray, radius: float,
             n: int, placement: str) -> np.ndarray:
    """Crystal centres: uniform, or grouped around a few nucleation sites."""
    if placement != "clustered":
        return points_in(rng, where, n)
    seeds = points_in(rng, where, int(rng.integers(1, 4)))
    if len(seeds) == 0:
        return seeds
    pick = seeds[rng.integers(0, len(seeds), size=n)]
    spread = radius * rng.uniform(0.04, 0.2)
    out = pick + rng.normal(0, spread, size=(n, 2))
    ys = np.clip(out[:, 1].astype(int), 0, layers.h - 1)
    xs = np.clip(out[:, 0].astype(int), 0, layers.w - 1)
    return out[where[ys, xs]]


def _solids(rng: np.random.Generator, layers: Layers, where: np.ndarray, radius: float,
            habit: str, size: str, contrast: float, focus: float, placement: str) -> None:
    body, facets, edge, far, hi = (layers.scratch() for _ in range(5))
    lo, hi_len = _LENGTH[size]
    n = int(rng.integers(_COUNT[size][0], _COUNT[size][1] + 1))
    if size != "micro" and rng.random() < 0.2:
        n = int(rng.integers(1, 3))  # one or two crystals alone in a clear drop
    shower_shapes = ("prism", "cube", "rhombic", "plate")
    centres = _centres(rng, layers, where, radius, n, placement)
    base_angle = rng.uniform(0, np.pi)
    aligned = rng.random() < 0.5
    for c in centres:
        shape = str(rng.choice(shower_shapes)) if habit == "shower" else habit
        length = max(radius * rng.uniform(lo, hi_len), 2.5 * layers.scale)
        angle = base_angle + rng.normal(0, 0.4) if aligned else rng.uniform(0, np.pi)
        face = _rot(_habit_polygon(rng, shape, length), angle) + c
        deep = (0.25, 0.6) if shape == "cube" else (0.08, 0.3)
        depth = rng.uniform(*deep) * length
        tilt = rng.uniform(0, 2 * np.pi)
        back = face + depth * np.array([np.cos(tilt), np.sin(tilt)])
        fill(body, face, 255)
        fill(body, back, 255)
        # Side faces catch the light differently: each gets its own shade (the 3D look).
        for k in range(len(face)):
            quad = np.array([face[k], face[(k + 1) % len(face)], back[(k + 1) % len(face)],
                             back[k]])
            fill(facets, quad, int(rng.integers(0, 256)))
        thick = 1 if length < 18 * layers.scale else int(rng.integers(1, 3))
        polyline(edge, face, 255, thick)
        polyline(far, back, 255, 1)
        for p, q in zip(face, back, strict=False):
            line(far, p, q, 255)
        if shape == "rhombic":
            line(far, face[0], face[2], 255)
        # The refraction highlight: one bright edge next to a dark one.
        k = int(rng.integers(0, len(face)))
        inset = (face - c) * 0.88 + c
        line(hi, inset[k], inset[(k + 1) % len(face)], 255, thick + 1)
    layers.mark_crystals(body)
    blur = 0.6 * layers.scale * focus
    soft = contrast / np.sqrt(focus)
    tint = GREY if rng.random() < 0.7 else np.array([0.8, 0.9, 1.0], np.float32)
    shade = (0.2, 0.5) if habit == "cube" else (0.1, 0.3)
    layers.add(body, tint, rng.uniform(0.04, 0.16) * soft, blur)
    layers.add(facets, tint, rng.uniform(*shade) * soft, blur)
    layers.add(edge, GREY, rng.uniform(0.55, 0.9) * soft, blur)
    layers.add(far, GREY, rng.uniform(0.2, 0.5) * soft, blur)
    layers.add_glow(hi, rng.uniform(0.08, 0.2) * soft, blur)


def _needles(rng: np.random.Generator, layers: Layers, where: np.ndarray, radius: float,
             size: str, contrast: float, focus: float) -> None:
    img = layers.scratch()
    # A needle is a line one or two pixels wide: its mask is drawn at least two pixels wide
    # (a crystal model cannot learn a half-covered single-pixel line).
    silhouette = layers.scratch()
    lo, hi_len = _LENGTH[size]
    clusters = int(rng.integers(1, 5 if size != "small" else 3))
    for c in points_in(rng, where, clusters):
        n = int(rng.integers(2, 25 if size != "small" else 10))
        spread = rng.uniform(0.3, np.pi)
        a0 = rng.uniform(0, 2 * np.pi)
        # Needle clusters grow from one point (sea-urchin-like) or lie scattered and crossing.
        scattered = rng.random() < 0.5
        for _ in range(n):
            length = radius * rng.uniform(lo, hi_len) * 2.0
            a = a0 + rng.uniform(-spread, spread)
            start = c + (rng.normal(0, radius * 0.15, 2) if scattered else 0.0)
            end = start + length * np.array([np.cos(a), np.sin(a)])
            value = int(rng.integers(150, 256))  # drawn before the width: the seeded stream
            width = 1 if rng.random() < 0.7 else 2
            line(img, start, end, value, width)
            line(silhouette, start, end, 255, width + 1)
        if not scattered and rng.random() < 0.5:
            circle(img, c, 1.5 * layers.scale, 200)
            circle(silhouette, c, 1.5 * layers.scale, 255)
    layers.mark_crystals(silhouette)
    layers.add(img, GREY, rng.uniform(0.45, 0.85) * contrast / np.sqrt(focus),
               0.5 * layers.scale * focus)

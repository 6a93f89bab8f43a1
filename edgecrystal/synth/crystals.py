"""Crystals: prisms, hexagonal plates, rods, rhombic bipyramids and needle clusters.

A transparent crystal in transmitted light shows mostly its edges: dark outlines, the faint
outline of the far face (drawn as the same polygon shifted, joined at the corners, which gives
the 3D look), a slightly darker or tinted body, and a bright line where an edge refracts light.
Sizes run from large single crystals down to a few faint microneedles (the hard cases).
"""

from __future__ import annotations

import numpy as np

from .layers import GREY, Layers, circle, fill, line, points_in, polyline

HABITS = ("prism", "plate", "rod", "rhombic", "needles")
SIZES = ("large", "medium", "small")
# Crystal length as a fraction of the drop radius, and how many appear, per size class.
_LENGTH = {"large": (0.18, 0.42), "medium": (0.08, 0.18), "small": (0.03, 0.08)}
_COUNT = {"large": (1, 4), "medium": (2, 10), "small": (3, 24)}


def _rot(poly: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return poly @ np.array([[c, s], [-s, c]])


def _habit_polygon(rng: np.random.Generator, habit: str, length: float) -> np.ndarray:
    """Outline of one face of a crystal, centred on 0, before rotation."""
    if habit == "prism":
        w = length * rng.uniform(0.45, 1.0)
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


def draw(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
         habit: str | None = None, size: str | None = None) -> dict[str, str]:
    habit = habit or str(rng.choice(HABITS, p=[0.25, 0.2, 0.15, 0.2, 0.2]))
    size = size or str(rng.choice(SIZES, p=[0.45, 0.35, 0.2]))
    # Contrast: most crystals are clear to see, some are faint (low birefringence, thin).
    contrast = float(rng.uniform(0.25, 0.5) if rng.random() < 0.25 else rng.uniform(0.55, 1.0))
    if habit == "needles":
        _needles(rng, layers, mask, radius, size, contrast)
    else:
        _solids(rng, layers, mask, radius, habit, size, contrast)
    return {"habit": habit, "size": size, "contrast": f"{contrast:.2f}"}


def _solids(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
            habit: str, size: str, contrast: float) -> None:
    body, facets, edge, far, hi = (layers.scratch() for _ in range(5))
    lo, hi_len = _LENGTH[size]
    n = int(rng.integers(_COUNT[size][0], _COUNT[size][1] + 1))
    # Crystals nucleate together: cluster them around a few seeds, sometimes along the edge.
    centres = points_in(rng, mask, n)
    base_angle = rng.uniform(0, np.pi)
    for c in centres:
        length = max(radius * rng.uniform(lo, hi_len), 3.0 * layers.scale)
        face = _rot(_habit_polygon(rng, habit, length),
                    base_angle + rng.normal(0, 0.6)) + c
        depth = rng.uniform(0.08, 0.3) * length
        tilt = rng.uniform(0, 2 * np.pi)
        off = depth * np.array([np.cos(tilt), np.sin(tilt)])
        back = face + off
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
        if habit == "rhombic":
            line(far, face[0], face[2], 255)
        # The refraction highlight: one bright edge next to a dark one.
        k = int(rng.integers(0, len(face)))
        inset = (face - c) * 0.88 + c
        line(hi, inset[k], inset[(k + 1) % len(face)], 255, thick + 1)
    blur = 0.6 * layers.scale
    tint = GREY if rng.random() < 0.7 else np.array([0.8, 0.9, 1.0], np.float32)
    layers.add(body, tint, rng.uniform(0.04, 0.14) * contrast, blur)
    layers.add(facets, tint, rng.uniform(0.1, 0.3) * contrast, blur)
    layers.add(edge, GREY, rng.uniform(0.55, 0.85) * contrast, blur)
    layers.add(far, GREY, rng.uniform(0.2, 0.45) * contrast, blur)
    layers.add_glow(hi, rng.uniform(0.08, 0.2) * contrast, blur)


def _needles(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
             size: str, contrast: float) -> None:
    img = layers.scratch()
    lo, hi_len = _LENGTH[size]
    clusters = int(rng.integers(1, 4 if size != "small" else 3))
    for c in points_in(rng, mask, clusters):
        n = int(rng.integers(3, 25 if size != "small" else 8))
        spread = rng.uniform(0.3, np.pi)
        a0 = rng.uniform(0, 2 * np.pi)
        # Needle clusters grow from one point (sea-urchin-like) or lie scattered and crossing.
        scattered = rng.random() < 0.4
        for _ in range(n):
            length = radius * rng.uniform(lo, hi_len) * 2.0
            a = a0 + rng.uniform(-spread, spread)
            start = c + (rng.normal(0, radius * 0.12, 2) if scattered else 0.0)
            end = start + length * np.array([np.cos(a), np.sin(a)])
            line(img, start, end, int(rng.integers(150, 256)))
        if not scattered and rng.random() < 0.5:
            circle(img, c, 1.5 * layers.scale, 200)
    layers.add(img, GREY, rng.uniform(0.45, 0.8) * contrast, 0.5 * layers.scale)

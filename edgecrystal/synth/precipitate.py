"""Precipitate: granular (clumped grains), amorphous (brown clouds with speckle), fine speckle,
sparse specks (a clear-looking drop with scattered dark grains, as some real precipitate drops
are) and heavy brown precipitate that darkens most of the drop.

Precipitate is many small absorbing particles; its look comes from how the particles cluster,
so grains are placed by a smooth clumping field and drawn as blurred points (a blurred point of
the right weight is a grain of that size), which is fully vectorised.
"""

from __future__ import annotations

import numpy as np

from .fields import smooth_noise
from .layers import BROWN, GREY, Layers, points_in

KINDS = ("granular", "amorphous", "speckle", "sparse", "heavy")
_KIND_P = (0.25, 0.25, 0.15, 0.2, 0.15)


def _grains(rng: np.random.Generator, layers: Layers, mask: np.ndarray, n: int,
            weight: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    out: np.ndarray = np.zeros((layers.h, layers.w), np.float32)
    p = points_in(rng, mask, n, weight)
    if len(p) == 0:
        return out
    xs = np.clip(p[:, 0].astype(np.int64), 0, layers.w - 1)
    ys = np.clip(p[:, 1].astype(np.int64), 0, layers.h - 1)
    # Weight 2*pi*sigma^2 makes each blurred point peak near 1: a grain of radius ~sigma.
    vals = rng.uniform(0.5, 1.0, size=len(p)).astype(np.float32) * np.float32(
        2 * np.pi * sigma * sigma)
    np.add.at(out, (ys, xs), vals)
    out = cv2.GaussianBlur(out, (0, 0), sigma)
    return np.minimum(out, 1.0)


def draw(rng: np.random.Generator, layers: Layers, mask: np.ndarray, radius: float,
         kind: str | None = None, strength: float = 1.0) -> dict[str, str]:
    """Paint precipitate; `strength` below 1 paints a lighter one (under crystals)."""
    kind = kind or str(rng.choice(KINDS, p=_KIND_P))
    _paint(rng, layers, mask, kind, strength)
    return {"habit": kind, "size": ""}


def _paint(rng: np.random.Generator, layers: Layers, mask: np.ndarray, kind: str,
           strength: float) -> None:
    s = layers.scale
    area = float(mask.sum())
    clump = smooth_noise(rng, layers.h, layers.w, int(rng.integers(3, 9)))
    # Concentrate particles: raise the field to a power so some regions are dense, some bare.
    weight = clump ** rng.uniform(1.5, 5.0)
    colour = BROWN if rng.random() < 0.75 else GREY
    density = rng.uniform(0.3, 1.0)
    if kind == "granular":
        n = int(area / (s * s) * rng.uniform(0.01, 0.05) * density)
        d = _grains(rng, layers, mask, n, weight, rng.uniform(0.8, 1.6) * s)
        d += 0.6 * _grains(rng, layers, mask, n // 6, weight, rng.uniform(1.8, 3.2) * s)
        layers.add(np.minimum(d, 1.0), colour, rng.uniform(0.45, 0.8) * strength)
    elif kind == "amorphous":
        cloud = np.clip((clump - rng.uniform(0.25, 0.55)) * 2.5, 0.0, 1.0)
        fine = smooth_noise(rng, layers.h, layers.w, int(rng.integers(20, 45)))
        cloud *= 0.6 + 0.4 * fine
        layers.add(cloud, colour, rng.uniform(0.2, 0.55) * density * strength)
        n = int(area / (s * s) * rng.uniform(0.01, 0.03))
        d = _grains(rng, layers, mask, n, weight, rng.uniform(0.7, 1.3) * s)
        layers.add(d, colour, rng.uniform(0.3, 0.6) * strength)
    elif kind == "sparse":
        # A few hundred dark grains, some clumped: the drop looks clear at a glance.
        n = int(area / (s * s) * rng.uniform(0.0008, 0.004))
        d = _grains(rng, layers, mask, n, clump ** 0.5, rng.uniform(0.9, 1.8) * s)
        layers.add(d, colour, rng.uniform(0.5, 0.9) * strength)
    elif kind == "heavy":
        # Dense brown precipitate: a dark textured mass over most of the drop.
        cloud = np.clip((clump - rng.uniform(0.0, 0.3)) * 2.0, 0.0, 1.0)
        fine = smooth_noise(rng, layers.h, layers.w, int(rng.integers(30, 60)))
        layers.add(cloud * (0.5 + 0.5 * fine), BROWN, rng.uniform(0.4, 0.75) * strength)
        n = int(area / (s * s) * rng.uniform(0.04, 0.1))
        d = _grains(rng, layers, mask, n, weight, rng.uniform(0.8, 1.5) * s)
        layers.add(d, BROWN, rng.uniform(0.4, 0.7) * strength)
    else:
        # Fine, even speckle: the hard precipitate, easy to take for a clear drop's texture.
        n = int(area / (s * s) * rng.uniform(0.015, 0.06))
        d = _grains(rng, layers, mask, n, clump ** 0.5, rng.uniform(0.6, 1.0) * s)
        layers.add(d, colour, rng.uniform(0.3, 0.6) * strength)

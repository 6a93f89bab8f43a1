"""Cheap random fields the generator paints with: smooth noise, colour fields, polar grids."""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A smooth random field in [0, 1]: a small random grid upsampled bicubically.

    Upsampling a `cells` x `cells` grid costs almost nothing and gives blotches about
    1/cells of the image across, which is the scale of illumination and tint variation.
    """
    import cv2

    grid = rng.random((cells + 1, cells + 1), dtype=np.float32)
    field = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / max(hi - lo, 1e-6)


def colour_field(rng: np.random.Generator, h: int, w: int, cells: int,
                 palette: np.ndarray) -> np.ndarray:
    """An HxWx3 field that wanders between the colours of `palette` (k x 3, values 0..1)."""
    import cv2

    idx = rng.integers(0, len(palette), size=(cells + 1, cells + 1))
    grid = palette[idx].astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def offsets(h: int, w: int, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    """dx (1 x w) and dy (h x 1), pixels from the centre: broadcast them, never build grids."""
    dx = (np.arange(w, dtype=np.float32) - np.float32(cx))[None, :]
    dy = (np.arange(h, dtype=np.float32) - np.float32(cy))[:, None]
    return dx, dy


def superellipse_radius(dx: np.ndarray, dy: np.ndarray, a: float, b: float,
                        p: float) -> np.ndarray:
    """Normalised radius of a superellipse: < 1 inside. p=2 is an ellipse, p~8 a rounded square."""
    if p == 2.0:
        return np.sqrt((dx / a) ** 2 + (dy / b) ** 2)
    return (np.abs(dx / a) ** p + np.abs(dy / b) ** p) ** (1.0 / p)

"""The drop: its outline (ellipse, lens, blob, teardrop), its mask and its meniscus shading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("ellipse", "blob", "teardrop", "lens")
_SHIFT = 4  # sub-pixel bits for cv2 polygon drawing


@dataclass(frozen=True)
class Drop:
    mask: np.ndarray  # bool HxW, already clipped to the well floor
    cx: float
    cy: float
    radius: float
    shape: str


def outline(rng: np.random.Generator, cx: float, cy: float, radius: float,
            shape: str, n: int = 256) -> np.ndarray:
    """Polygon (n x 2, float pixels) of a drop outline."""
    theta = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    r = np.ones(n)
    if shape in ("blob", "teardrop"):
        # Low harmonics make a wobbly, blobby rim; amplitudes fall with the harmonic.
        for k in range(2, 6):
            r += rng.uniform(0.0, 0.12 / k) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    if shape == "teardrop":
        # The point where the pipette tip left the drop (common in MARCO images).
        tip = rng.uniform(0, 2 * np.pi)
        d = np.angle(np.exp(1j * (theta - tip)))
        r += rng.uniform(0.15, 0.35) * np.exp(-(d / rng.uniform(0.18, 0.35)) ** 2)
    if shape == "lens":
        # A lens: two circular arcs meeting in soft corners, like a drop spread along a wall.
        lens = np.abs(np.cos(theta)) ** 3 + np.abs(np.sin(theta)) ** 2.2
        r = 1.0 / np.maximum(lens, 1e-3) ** 0.35
    aspect = rng.uniform(0.72, 1.0) if shape != "lens" else rng.uniform(0.55, 0.8)
    rot = rng.uniform(0, 2 * np.pi)
    x = r * np.cos(theta)
    y = r * np.sin(theta) * aspect
    xr = x * np.cos(rot) - y * np.sin(rot)
    yr = x * np.sin(rot) + y * np.cos(rot)
    scale = radius / np.sqrt(aspect)  # keep the area close to pi * radius^2
    return np.stack([cx + xr * scale, cy + yr * scale], axis=1)


def fill(h: int, w: int, poly: np.ndarray) -> np.ndarray:
    import cv2

    img = np.zeros((h, w), np.uint8)
    pts = np.round(poly * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(img, [pts], 255, lineType=cv2.LINE_8, shift=_SHIFT)
    return img > 0


def meniscus(rng: np.random.Generator, drop: Drop, strength: float,
             scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Absorption and glow of the meniscus: a dark edge crescent, thicker on one side (the
    light comes in at an angle through a curved surface), with a bright rim just inside."""
    import cv2

    h, w = drop.mask.shape
    m8 = drop.mask.astype(np.uint8)
    d_in = cv2.distanceTransform(m8, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(1 - m8, cv2.DIST_L2, 3)
    dx = (np.arange(w, dtype=np.float32) - np.float32(drop.cx))[None, :]
    dy = (np.arange(h, dtype=np.float32) - np.float32(drop.cy))[:, None]
    ang = np.arctan2(dy, dx)
    phi = rng.uniform(-np.pi, np.pi)
    sharp = rng.uniform(1.0, 4.0)
    side = ((1.0 + np.cos(ang - np.float32(phi))) * np.float32(0.5)) ** np.float32(sharp)
    base = rng.uniform(1.5, 4.0) * scale
    thick = rng.uniform(0.04, 0.25) * drop.radius
    width = base + np.float32(thick) * side
    inside = drop.mask
    # A plateau of near-full darkness against the edge that fades inwards: the steep part of
    # the meniscus bends the light out of the objective (MARCO's black crescents).
    profile = 1.0 / (1.0 + (d_in / (0.55 * width)) ** 3)
    dark = profile * (strength * (0.15 + 0.85 * side))
    # d_out is 0 inside the drop: a thin dark line just outside its edge.
    dark = np.where(inside, dark, np.exp(-d_out / np.float32(1.2 * scale)) * (0.35 * strength))
    glow = np.exp(-(((d_in - width * 1.3) / (0.5 * width + 1.0)) ** 2))
    glow *= np.float32(rng.uniform(0.03, 0.1)) * inside
    return dark.astype(np.float32), glow.astype(np.float32)


def dome(drop: Drop, amount: float) -> np.ndarray:
    """Lens shading: 1 at the drop's centre falling towards its edge."""
    import cv2

    d_in = cv2.distanceTransform(drop.mask.astype(np.uint8), cv2.DIST_L2, 3)
    t = np.clip(d_in / max(drop.radius * 0.8, 1.0), 0.0, 1.0)
    return (1.0 - amount * (1.0 - np.sqrt(t))).astype(np.float32)

"""Where drop contents are painted: per-pixel absorption (RGB) and glow, plus drawing helpers.

Contents are drawn on 8-bit scratch layers (OpenCV antialiases only there), then added to the
float layers with a colour. The well renderer multiplies the lit floor by (1 - absorb) and adds
glow, which is how a transmitted-light microscope image of thin objects behaves to first order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

SHIFT = 4  # sub-pixel bits for cv2 drawing
GREY = np.array([1.0, 1.0, 1.0], np.float32)
BROWN = np.array([0.45, 0.62, 0.85], np.float32)  # absorbs blue most: brown in transmission


@dataclass
class Layers:
    h: int
    w: int
    scale: float  # pixels per pixel of a 512-px image: keeps sizes resolution-independent
    glow: np.ndarray = field(init=False)
    # One single-channel density per absorption colour: far cheaper than an RGB layer per add.
    densities: dict[tuple[float, float, float], np.ndarray] = field(init=False)
    # Where the crystals are (the crystal model's ground truth): every pixel a crystal's
    # silhouette covers, whatever its contrast; precipitate, skins, bubbles and dust never.
    crystals: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.glow = np.zeros((self.h, self.w), np.float32)
        self.densities = {}
        self.crystals = np.zeros((self.h, self.w), bool)

    def mark_crystals(self, silhouette: np.ndarray) -> None:
        """Add a drawn silhouette (uint8 scratch, antialiased) to the crystal mask: a pixel
        at least half covered is a crystal pixel."""
        self.crystals |= silhouette >= 128

    def absorb(self) -> np.ndarray:
        """Total absorption, HxWx3."""
        out = np.zeros((self.h, self.w, 3), np.float32)
        for colour, d in self.densities.items():
            out += d[..., None] * np.array(colour, np.float32)
        return out

    def scratch(self) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8)

    def add(self, density: np.ndarray, colour: np.ndarray = GREY, amount: float = 1.0,
            blur: float = 0.0) -> None:
        """Add a density layer (uint8 0..255 or float 0..1) as absorption of `colour`."""
        d = _as_float(density, blur) * np.float32(amount)
        key = (float(colour[0]), float(colour[1]), float(colour[2]))
        if key in self.densities:
            self.densities[key] += d
        else:
            self.densities[key] = d

    def add_glow(self, density: np.ndarray, amount: float, blur: float = 0.0) -> None:
        self.glow += _as_float(density, blur) * np.float32(amount)

    def clip_to(self, mask: np.ndarray) -> None:
        for d in self.densities.values():
            d *= mask
        self.glow *= mask
        self.crystals &= mask.astype(bool)


def _as_float(density: np.ndarray, blur: float) -> np.ndarray:
    import cv2

    d: np.ndarray = density.astype(np.float32)
    if density.dtype == np.uint8:
        d *= np.float32(1.0 / 255.0)
    if blur > 0:
        d = cv2.GaussianBlur(d, (0, 0), blur)
    return d


def pts(poly: np.ndarray) -> np.ndarray:
    """Float polygon -> int32 points for cv2 drawing with SHIFT sub-pixel bits."""
    return np.round(np.asarray(poly) * (1 << SHIFT)).astype(np.int32)


def line(img: np.ndarray, p0: ArrayLike, p1: ArrayLike, value: int, thickness: int = 1) -> None:
    import cv2

    a = pts(np.asarray(p0, np.float64))
    b = pts(np.asarray(p1, np.float64))
    cv2.line(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), int(value),
             max(1, thickness), cv2.LINE_AA, SHIFT)


def polyline(img: np.ndarray, poly: np.ndarray, value: int, thickness: int = 1,
             closed: bool = True) -> None:
    import cv2

    cv2.polylines(img, [pts(poly)], closed, int(value), max(1, thickness), cv2.LINE_AA, SHIFT)


def fill(img: np.ndarray, poly: np.ndarray, value: int) -> None:
    import cv2

    cv2.fillPoly(img, [pts(poly)], int(value), cv2.LINE_AA, SHIFT)


def circle(img: np.ndarray, c: ArrayLike, r: float, value: int, thickness: int = -1) -> None:
    import cv2

    cc = pts(np.asarray(c, np.float64))
    cv2.circle(img, (int(cc[0]), int(cc[1])), max(1, round(r * (1 << SHIFT))), int(value),
               thickness if thickness < 0 else max(1, thickness), cv2.LINE_AA, SHIFT)


def points_in(rng: np.random.Generator, mask: np.ndarray, n: int,
              weight: np.ndarray | None = None) -> np.ndarray:
    """n random (x, y) pixel positions inside `mask`, optionally weighted (clumping)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0 or n <= 0:
        return np.zeros((0, 2))
    if weight is None:
        idx = rng.integers(0, len(xs), size=n)
    else:
        p = weight[ys, xs].astype(np.float64) + 1e-9
        idx = rng.choice(len(xs), size=n, p=p / p.sum())
    jitter = rng.random((n, 2))
    return np.stack([xs[idx] + jitter[:, 0], ys[idx] + jitter[:, 1]], axis=1)

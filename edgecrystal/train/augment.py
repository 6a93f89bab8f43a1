"""The paper's augmentation, in numpy/OpenCV, drawn from a seeded generator per batch.

Finder: gamma 0.8-1.2 on the image; shift up to 10 % and zoom 0.9-1.1 on image and mask with the
same matrix. Classifier: horizontal and vertical flips, shift, zoom and an additive shift of each
colour channel of up to +-100 grey levels. Border pixels are repeated, as Keras' "nearest" fill.
"""

from __future__ import annotations

import cv2
import numpy as np

from .profiles import ClassifierHP, FinderHP


def _affine(rng: np.random.Generator, size: int, shift: float,
            zoom: tuple[float, float]) -> np.ndarray:
    z = rng.uniform(*zoom)
    tx, ty = rng.uniform(-shift, shift, size=2) * size
    c = (size - 1) / 2.0
    # Zoom about the centre, then translate.
    return np.array([[z, 0.0, (1 - z) * c + tx], [0.0, z, (1 - z) * c + ty]], dtype=np.float64)


def _gamma(img: np.ndarray, g: float) -> np.ndarray:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(img, lut)


def augment_finder(
    img: np.ndarray, mask: np.ndarray, rng: np.random.Generator, hp: FinderHP
) -> tuple[np.ndarray, np.ndarray]:
    """One finder sample: uint8 HxWx3 image, float HxW(x1) 0/1 mask."""
    size = img.shape[0]
    out = _gamma(img, rng.uniform(hp.gamma_min, hp.gamma_max))
    m = _affine(rng, size, hp.shift, (hp.zoom_min, hp.zoom_max))
    out = cv2.warpAffine(out, m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    msk: np.ndarray = np.asarray(mask, dtype=np.float32).reshape(size, size)
    msk = cv2.warpAffine(msk, m, (size, size), flags=cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_REPLICATE)
    return out, msk[..., None]


def augment_classifier(img: np.ndarray, rng: np.random.Generator, hp: ClassifierHP) -> np.ndarray:
    """One classifier sample: uint8 HxWx3."""
    size = img.shape[0]
    out = img
    if hp.hflip and rng.random() < 0.5:
        out = out[:, ::-1]
    if hp.vflip and rng.random() < 0.5:
        out = out[::-1]
    m = _affine(rng, size, hp.shift, (hp.zoom_min, hp.zoom_max))
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    if hp.channel_shift:
        delta = rng.uniform(-hp.channel_shift, hp.channel_shift, size=3)
        out = np.clip(out.astype(np.float32) + delta, 0, 255).astype(np.uint8)
    return out

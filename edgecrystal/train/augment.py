"""The paper's augmentation, in numpy/OpenCV, drawn from a seeded generator per batch.

Finder: gamma 0.8-1.2 on the image; shift up to 10 % and zoom 0.9-1.1 on image and mask with the
same matrix; with `flips`, flips and quarter turns too; with `photometric`, the camera and
imager changes a finder must not care about (photometric_finder). Classifier: horizontal and
vertical flips, shift, zoom and an additive shift of each colour channel of up to +-100 grey
levels; with `photometric`, the same camera changes as the finder's. Border pixels are
repeated, as Keras' "nearest" fill.
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
    if hp.flips:
        turns = int(rng.integers(0, 4))
        flip = rng.random() < 0.5
        out, msk = np.rot90(out, turns), np.rot90(msk, turns)
        if flip:
            out, msk = out[:, ::-1], msk[:, ::-1]
        out, msk = np.ascontiguousarray(out), np.ascontiguousarray(msk)
    if hp.photometric:
        out = photometric_finder(out, rng)
    return out, msk[..., None]


def photometric_finder(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What another imager's camera and light change, and a finder must not care about:
    brightness, contrast, per-channel gain (white balance), hue, greyscale, defocus blur, noise
    and JPEG. Each is applied with its own probability, so a batch holds mild and hard cases."""
    out: np.ndarray = img.astype(np.float32)
    if rng.random() < 0.8:
        mean = out.mean()
        out = (out - mean) * rng.uniform(0.6, 1.4) + mean * rng.uniform(0.7, 1.3)
    if rng.random() < 0.5:
        out *= rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(rng.integers(-20, 21))) % 180
                       ).astype(np.uint8)
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.random() < 0.2:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.5))
    if rng.random() < 0.4:
        noise = rng.normal(0, rng.uniform(1, 8), out.shape[:2])[..., None]
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, enc = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 90))])
        decoded = cv2.imdecode(enc, cv2.IMREAD_UNCHANGED) if ok else None
        if decoded is not None:
            out = decoded
    return out


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
    if hp.photometric:
        out = photometric_finder(out, rng)
    return out

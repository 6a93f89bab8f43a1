"""Pictures for checking a converted model (parity with its source, timing variants against each
other): small synthetic wells when the caller has no images, turned into model inputs by the
runtime's own preprocessing. TensorFlow-free."""

from __future__ import annotations

from typing import TypedDict

import numpy as np

from edgecrystal.bundle import Bundle


class Parity(TypedDict):
    """A converted model vs its source on the same check pictures (recorded in bundle.json)."""

    max_abs_diff: float
    mean_abs_diff: float
    images: int


def parity_batch(bundle: Bundle, model: str, images: list[np.ndarray] | None) -> np.ndarray:
    """Model inputs made with the runtime's preprocessing from `images` (or synthetic drops)."""
    from edgecrystal import preprocess

    size = bundle.input_size(model)
    pictures = images if images else synthetic_wells(4)
    if model == "finder":
        return np.stack([preprocess.finder_input(p, size) for p in pictures])
    return np.stack([preprocess.full_image(p, size).pixels for p in pictures])


def synthetic_wells(n: int, seed: int = 0, size: int = 160) -> list[np.ndarray]:
    """Small well-like pictures (grey well, a lighter drop, a few dark specks), for checks."""
    import cv2

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.full((size, size, 3), int(rng.integers(60, 110)), np.uint8)
        centre = (int(rng.integers(size // 3, 2 * size // 3)),) * 2
        cv2.circle(img, centre, int(rng.integers(size // 5, size // 3)),
                   tuple(int(v) for v in rng.integers(140, 230, 3)), -1)
        for _ in range(int(rng.integers(0, 8))):
            p = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.line(img, p, (p[0] + 6, p[1] + 3), (20, 20, 20), 1)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        out.append(img)
    return out

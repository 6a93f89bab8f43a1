"""Close-up views: the drop filling the frame, as an imager zoomed in on it photographs it.

Some imagers (and every zoomed inspection) show only the inside of the drop: no well wall, no
drop edge, crystals large in the frame. A classifier that saw only whole wells misreads them
(held-out close-ups cut from wells it scores at macro AUC 0.975 score 0.910; docs/training.md).
A close-up here is a window of a well rendered at CLOSEUP_SCALE times the asked size (so the
window keeps the detail a zoomed camera has), lying in the drop, resized to the asked size;
the drop and crystal masks are cut and resized with it. A crystals well's window holds
crystal pixels, so the label stays true; an `other` well's window is larger (its skin fold or
spherulite is one place in the drop).
"""

from __future__ import annotations

import cv2
import numpy as np

CLOSEUP_SCALE = 2
# The window's height as a share of the drop box's shorter side, per label.
WINDOW_SHARE = {"other": (0.65, 0.95)}
DEFAULT_SHARE = (0.45, 0.8)
MIN_DROP_COVER = 0.9  # the drop fills the frame; an edge may show in a corner
MIN_CRYSTAL_SHARE = 0.002  # of the window's pixels: a crystal is in view
TRIES = 40


def closeup(rng: np.random.Generator, rgb: np.ndarray, mask: np.ndarray,
            crystals: np.ndarray, label: str, width: int, height: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(rgb, drop mask, crystal mask) of a `width` x `height` window of a well rendered large,
    or None when no window fits the rules (a small or empty drop): the caller shows the well."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    side = min(xs.max() - xs.min(), ys.max() - ys.min())
    low, high = WINDOW_SHARE.get(label, DEFAULT_SHARE)
    crystal_points = np.argwhere(crystals) if label == "crystals" else None
    if crystal_points is not None and len(crystal_points) == 0:
        return None
    # At most 2x upsampling of the large render: a smaller window would invent detail.
    low, high = max(low * side, height / 2), high * side
    if low > high:
        return None  # the drop is too small to zoom into
    for _ in range(TRIES):
        h = int(rng.uniform(low, high))
        w = int(h * width / height)
        if w >= rgb.shape[1] or h >= rgb.shape[0]:
            continue
        if crystal_points is not None:  # a crystal pixel somewhere inside the window
            cy, cx = crystal_points[rng.integers(len(crystal_points))]
            x0 = int(np.clip(cx - rng.uniform(0.15, 0.85) * w, 0, rgb.shape[1] - w))
            y0 = int(np.clip(cy - rng.uniform(0.15, 0.85) * h, 0, rgb.shape[0] - h))
        else:
            x0 = int(rng.integers(xs.min(), max(xs.min() + 1, xs.max() - w)))
            y0 = int(rng.integers(ys.min(), max(ys.min() + 1, ys.max() - h)))
        window = (slice(y0, y0 + h), slice(x0, x0 + w))
        if mask[window].shape != (h, w) or mask[window].mean() < MIN_DROP_COVER:
            continue
        if crystal_points is not None and crystals[window].mean() < MIN_CRYSTAL_SHARE:
            continue
        return resized(rgb[window], mask[window], crystals[window], width, height)
    return None


def resized(rgb: np.ndarray, mask: np.ndarray, crystals: np.ndarray, width: int,
            height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An image and its drop and crystal masks at `width` x `height` (a close-up's window, or
    the whole large render where no close-up fits)."""
    size = (width, height)
    area = cv2.INTER_AREA
    out = cv2.resize(rgb, size, interpolation=area)
    drop = cv2.resize(mask.astype(np.float32), size, interpolation=area) >= 0.5
    # A thin needle survives the shrink when a quarter of a pixel is crystal.
    crystal = cv2.resize(crystals.astype(np.float32), size, interpolation=area) >= 0.25
    return out, drop, crystal & drop

"""The one preprocessing: what every model input is made of, in training, calibration and serving.

Models take uint8 NHWC pixels; scaling to the network's range is a layer inside each model, so it
travels into ONNX and TensorRT. What lives here is only geometry: resizing a well image for the
finder, and the paper's crop step (mask -> drop crop with the background masked -> classifier
input). numpy and OpenCV only: the runtime imports this, never TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fraction of the drop's box added on each side before cropping: keeps the meniscus edge, where
# crystals often sit, inside the crop.
DEFAULT_MARGIN = 0.05
DEFAULT_THRESHOLD = 0.5
# A component smaller than this fraction of the image is dust or noise, not a drop.
MIN_DROP_FRACTION = 0.002
# Value written where the drop is not (the paper masks the background away).
BACKGROUND = 0

CROP_MODES = ("finder", "manual", "none")


@dataclass(frozen=True)
class Crop:
    """A classifier input and where it came from, in the original image's pixels."""

    pixels: np.ndarray  # size x size x 3 uint8
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), original pixels
    area: int  # drop area in original pixels (0 when no drop was found)
    found: bool  # False: no drop in the mask, the whole image was used
    # The drop's outer contour (OpenCV points, original pixels) when one was found: what the
    # overlay draws, from the same region the crop was cut from.
    outline: np.ndarray | None = None


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Square resize for a network input (area interpolation when shrinking)."""
    import cv2

    h, w = rgb.shape[:2]
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def finder_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """The finder sees the whole well image squashed to size x size, as in the paper."""
    return resize(rgb, size)


def mask_to_image(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Finder output (size x size probabilities, any trailing 1-channel) back to image size."""
    import cv2

    p = np.asarray(prob, dtype=np.float32)
    if p.ndim == 3:
        p = p[..., 0]
    return cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class DropRegion:
    """The largest component of a thresholded mask, holes filled."""

    filled: np.ndarray  # uint8 0/1 at the mask's size
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int
    outline: np.ndarray  # outer contour, OpenCV points in the mask's pixels


def largest_drop(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> DropRegion | None:
    """Largest connected component of `mask >= threshold`, holes filled; None when no component
    is large enough to be a drop.

    Everything stays in OpenCV calls on uint8 images: on a 1280x960 frame this is a few
    milliseconds, where numpy boolean indexing over the whole frame costs several times more."""
    import cv2

    binary = (np.asarray(mask) >= threshold).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return None
    areas = stats[1:, cv2.CC_STAT_AREA]
    best = 1 + int(np.argmax(areas))
    if areas[best - 1] < MIN_DROP_FRACTION * binary.size:
        return None
    x, y, w, h = (int(v) for v in stats[best, :4])
    # Work inside the component's box only: fill holes (bubbles and dark crystals inside the
    # drop are drop, not background) by drawing its outer contour filled.
    component = (labels[y : y + h, x : x + w] == best).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled_box = np.zeros_like(component)
    cv2.drawContours(filled_box, contours, -1, 1, thickness=cv2.FILLED)
    filled = np.zeros_like(binary)
    filled[y : y + h, x : x + w] = filled_box
    outline = max(contours, key=cv2.contourArea) + np.array([x, y], dtype=np.int32)
    return DropRegion(filled, (x, y, x + w, y + h), int(cv2.countNonZero(filled_box)), outline)


def crop_drop(
    rgb: np.ndarray,
    mask: np.ndarray | None,
    size: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
) -> Crop:
    """The paper's crop step. `mask` is at the image's size (probabilities or 0/1), or None.

    mask -> threshold -> largest component, holes filled -> box + margin -> background masked
    -> padded to a square -> resized to `size`. No drop (or no mask): the whole image, squared.
    """
    h, w = rgb.shape[:2]
    found = None if mask is None else largest_drop(mask, threshold)
    if found is None:
        return Crop(_square(rgb, size), (0, 0, w, h), 0, False)
    region = found.filled
    x0, y0, x1, y1 = found.box
    my, mx = round((y1 - y0) * margin), round((x1 - x0) * margin)
    y0, y1 = max(0, y0 - my), min(h, y1 + my)
    x0, x1 = max(0, x0 - mx), min(w, x1 + mx)
    patch = rgb[y0:y1, x0:x1].copy()
    patch[region[y0:y1, x0:x1] == 0] = BACKGROUND
    return Crop(_square(patch, size), (x0, y0, x1, y1), found.area, True, found.outline)


def full_image(rgb: np.ndarray, size: int) -> Crop:
    """The 'none' arm: the whole image, squared, as the classifier input."""
    h, w = rgb.shape[:2]
    return Crop(_square(rgb, size), (0, 0, w, h), 0, False)


def _square(patch: np.ndarray, size: int) -> np.ndarray:
    """Pad to a square with the background value (keeps the aspect ratio), then resize."""
    h, w = patch.shape[:2]
    side = max(h, w)
    if h != w:
        canvas = np.full((side, side, patch.shape[2]), BACKGROUND, dtype=patch.dtype)
        top, left = (side - h) // 2, (side - w) // 2
        canvas[top : top + h, left : left + w] = patch
        patch = canvas
    return resize(patch, size)

"""The one preprocessing: what every model input is made of, in training, calibration and serving.

Models take uint8 NHWC pixels; scaling to the network's range is a layer inside each model, so it
travels into ONNX and TensorRT. What lives here is only geometry, at the resolution each step
needs:

- the finder input: the whole well squashed to size x size, resized from the coarsest reduced
  decode whose short side still has `size` pixels (a JPEG decodes at 1/2, 1/4 or 1/8 in libjpeg
  for a fraction of a full decode's time; other formats have only the full decode);
- the drop region: found at the mask's own resolution (the finder's output, or a hand-drawn
  mask at the image's size): threshold, largest component, holes filled; only its box, area and
  outline are mapped to the original image's pixels;
- the crop: cut from the coarsest decode in which the box (plus margin) still spans the
  classifier's input size, but never from one coarser than the finder's input was made from
  (that decode is in memory already: a JPEG's entropy decoding costs most of a decode at any
  scale, so a second, coarser decode cost more than it saved); the background masked, padded
  to a square, resized.

An image comes in as a `Source` (imageio.Picture: a file's bytes, decoded at a reduction on
demand) or as a plain RGB array (one resolution only). numpy and OpenCV only: the runtime imports
this, never TensorFlow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

# Fraction of the drop's box added on each side before cropping: keeps the meniscus edge, where
# crystals often sit, inside the crop.
DEFAULT_MARGIN = 0.05
DEFAULT_THRESHOLD = 0.5
# A component smaller than this fraction of the image is dust or noise, not a drop.
MIN_DROP_FRACTION = 0.002
# A region smaller than this is too small to be a drop: where a drop fills the well (no edge to
# find), finders mark fragments of 1-3 % of the image. The smallest drop is 13 % of the image
# among the 17 real photos and 5.5 % among 300 synthetic wells of the four imager styles.
MIN_DROP_SHARE = 0.04
# A region whose centre lies outside this share of the ellipse inscribed in the image is outside
# the well (a blob in the plate's corner). Drop centres reach 0.57 of it in the real photos,
# 0.60 in the synthetic wells.
WELL_RADIUS = 0.85
# Why no drop was cropped although the finder ran (result files: drop.reason).
NO_EDGE, TOO_SMALL, OUTSIDE_WELL = "no edge", "too small", "outside the well"
# A region the finder is nowhere sure about (its peak probability below this) is not a drop: an
# empty well gives a faint haze just over the threshold, and cropping it would invent a drop.
MIN_DROP_PEAK = 0.75
# Value written where the drop is not (the paper masks the background away).
BACKGROUND = 0

CROP_MODES = ("finder", "manual", "none")


class Source(Protocol):
    """An image readable at several reductions (1 = full size); imageio.Picture is one."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def reductions(self) -> tuple[int, ...]: ...

    def pixels(self, reduction: int) -> np.ndarray:
        """HxWx3 uint8 RGB decoded at 1/`reduction` (libjpeg's size: ceil(side / reduction))."""
        ...


@dataclass(frozen=True)
class ArraySource:
    """Pixels already in memory: only the full resolution."""

    rgb: np.ndarray

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def reductions(self) -> tuple[int, ...]:
        return (1,)

    def pixels(self, reduction: int) -> np.ndarray:
        if reduction != 1:
            raise ValueError(f"an in-memory image has no 1/{reduction} decode")
        return self.rgb




def as_source(image: np.ndarray | Source) -> Source:
    return ArraySource(image) if isinstance(image, np.ndarray) else image


def reduced_size(width: int, height: int, reduction: int) -> tuple[int, int]:
    """libjpeg's output size at 1/`reduction` (it rounds up)."""
    return -(-width // reduction), -(-height // reduction)


def coarsest(source: Source, min_width: float, min_height: float) -> int:
    """The largest reduction whose decode still has at least min_width x min_height pixels."""
    fits = [r for r in source.reductions
            if all(got >= need for got, need in zip(
                reduced_size(source.width, source.height, r), (min_width, min_height),
                strict=True))]
    return max(fits, default=min(source.reductions))


@dataclass(frozen=True)
class Crop:
    """A classifier input and where it came from, in the original image's pixels."""

    pixels: np.ndarray  # size x size x 3 uint8
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive), original pixels
    area: int  # drop area in original pixels (0 when no drop was found)
    found: bool  # False: no drop in the mask, the whole image was used
    # When a mask was searched and no drop found: NO_EDGE, TOO_SMALL or OUTSIDE_WELL.
    reason: str | None = None
    # The drop's outer contour (OpenCV points, original pixels) when one was found: what the
    # overlay draws, from the same region the crop was cut from.
    outline: np.ndarray | None = None


def resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Square resize for a network input (area interpolation when shrinking)."""
    import cv2

    h, w = rgb.shape[:2]
    if rgb.dtype == np.uint8 and h >= size and w >= size and (h % size or w % size):
        # A shrink by a non-integer factor: OpenCV's general area resize sums in float for
        # uint8 and float pixels alike, with the same weights in the same order, and rounds
        # half to even, as np.rint does; given uint8 it converts every pixel in its inner
        # loop, which made it 40 % slower (a 640x480 finder input: 1.25 -> 0.89 ms). Same
        # pixels (tests/test_preprocess.py). Integer factors take OpenCV's integer path.
        shrunk = cv2.resize(rgb.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        return np.rint(shrunk).astype(np.uint8)
    interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interp)


def finder_input(image: np.ndarray | Source, size: int) -> np.ndarray:
    """The finder sees the whole well image squashed to size x size, as in the paper, resized
    from the coarsest decode that still has `size` pixels on its short side."""
    source = as_source(image)
    return resize(source.pixels(coarsest(source, size, size)), size)


def mask_to_image(prob: np.ndarray, height: int, width: int) -> np.ndarray:
    """Finder output (size x size probabilities, any trailing 1-channel) at the image's size:
    for scoring masks against drawn ones (Dice), not for cropping."""
    import cv2

    p = np.asarray(prob, dtype=np.float32)
    if p.ndim == 3:
        p = p[..., 0]
    return cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class DropRegion:
    """The largest component of a thresholded mask, holes filled, in the mask's pixels."""

    filled: np.ndarray  # uint8 0/1 at the mask's size
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int
    outline: np.ndarray  # outer contour, OpenCV points in the mask's pixels


def largest_drop(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> DropRegion | None:
    """The drop region of `find_drop`, or None when there is none."""
    region = find_drop(mask, threshold)
    return region if isinstance(region, DropRegion) else None


def find_drop(mask: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> DropRegion | str:
    """Largest connected component of `mask >= threshold` whose centre lies in the well, holes
    filled; else why there is none: NO_EDGE (nothing the finder is sure of), OUTSIDE_WELL (every
    candidate lies outside the well) or TOO_SMALL (the largest in the well is too small to be a
    drop). Works at the mask's resolution (a trailing 1-channel is fine).

    Everything stays in OpenCV calls on uint8 images: numpy boolean indexing over a whole frame
    costs several times more."""
    import cv2

    mask = _plane(mask)
    if float(mask.max(initial=0.0)) < MIN_DROP_PEAK:
        # No pixel is sure enough, so no component could pass the peak test below: an empty
        # well's haze costs a max, not a component search (0.6 ms on a noisy 256 px mask).
        return NO_EDGE
    binary = (mask >= threshold).astype(np.uint8)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(binary, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    candidates = [k for k in range(1, n) if areas[k - 1] >= MIN_DROP_FRACTION * binary.size]
    if not candidates:
        return NO_EDGE
    height, width = binary.shape
    inside = [k for k in candidates
              if np.hypot(centres[k][0] / width * 2 - 1, centres[k][1] / height * 2 - 1)
              <= WELL_RADIUS]
    if not inside:
        return OUTSIDE_WELL
    best = max(inside, key=lambda k: int(areas[k - 1]))
    if areas[best - 1] < MIN_DROP_SHARE * binary.size:
        return TOO_SMALL
    x, y, w, h = (int(v) for v in stats[best, :4])
    # Work inside the component's box only: fill holes (bubbles and dark crystals inside the
    # drop are drop, not background) by drawing its outer contour filled.
    component = (labels[y : y + h, x : x + w] == best).astype(np.uint8)
    if float(mask[y : y + h, x : x + w][component > 0].max()) < MIN_DROP_PEAK:
        return NO_EDGE
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled_box = np.zeros_like(component)
    cv2.drawContours(filled_box, contours, -1, 1, thickness=cv2.FILLED)
    filled = np.zeros_like(binary)
    filled[y : y + h, x : x + w] = filled_box
    outline = max(contours, key=cv2.contourArea) + np.array([x, y], dtype=np.int32)
    return DropRegion(filled, (x, y, x + w, y + h), int(cv2.countNonZero(filled_box)), outline)


def crop_drop(
    image: np.ndarray | Source,
    mask: np.ndarray | None,
    size: int,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    margin: float = DEFAULT_MARGIN,
    finder_size: int = 0,
) -> Crop:
    """The paper's crop step. `mask` covers the whole image at any resolution (the finder's
    size x size probabilities, or a drawn mask at the image's size), or is None.
    `finder_size`: the input size of the finder that works with the classifier (0: none).

    mask -> threshold -> largest component, holes filled (at the mask's resolution) -> box
    mapped to the image's pixels + margin -> cut from the coarsest decode that still spans
    `size`, or the finder input's decode if that is finer -> background masked -> padded to a
    square -> resized to `size`. No drop (or no mask): the whole image, squared.
    """
    source = as_source(image)
    found = None if mask is None else find_drop(mask, threshold)
    if not isinstance(found, DropRegion):
        whole = full_image(source, size, finder_size=finder_size)
        return replace(whole, reason=found)
    width, height = source.width, source.height
    mask_height, mask_width = found.filled.shape
    scale_x, scale_y = width / mask_width, height / mask_height
    # A mask pixel i covers [i * scale, (i + 1) * scale) of the image: the thresholded edge
    # between an inside and an outside pixel lies on that boundary.
    x0, y0, x1, y1 = found.box
    x0, x1 = round(x0 * scale_x), round(x1 * scale_x)
    y0, y1 = round(y0 * scale_y), round(y1 * scale_y)
    my, mx = round((y1 - y0) * margin), round((x1 - x0) * margin)
    box = (max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my))
    patch = _cut(source, box, found.filled, size, finder_size)
    area = round(found.area * scale_x * scale_y)
    return Crop(_square(patch, size), box, area, True,
                outline=_to_image(found.outline, scale_x, scale_y))


def full_image(image: np.ndarray | Source, size: int, *, finder_size: int = 0) -> Crop:
    """The 'none' arm (and the crop when no drop is found): the whole image, squared, as
    the classifier input. `finder_size` as in crop_drop."""
    source = as_source(image)
    width, height = source.width, source.height
    reduction = _crop_reduction(source, width, height, size, finder_size)
    return Crop(_square(source.pixels(reduction), size), (0, 0, width, height), 0, False)


def _plane(mask: np.ndarray) -> np.ndarray:
    plane = np.asarray(mask)
    return plane[..., 0] if plane.ndim == 3 else plane


def _spanning(source: Source, box_width: int, box_height: int, size: int) -> int:
    """The largest reduction at which a box_width x box_height box still has `size` pixels on
    its long side (the side the square crop is resized from)."""
    for reduction in sorted(source.reductions, reverse=True):
        level_width, level_height = reduced_size(source.width, source.height, reduction)
        long_side = max(box_width * level_width / source.width,
                        box_height * level_height / source.height)
        if long_side >= size:
            return reduction
    return min(source.reductions)


def _crop_reduction(source: Source, box_width: int, box_height: int, size: int,
                    finder_size: int) -> int:
    """The decode a crop is cut from: the coarsest that spans `size` (_spanning), or the one
    the finder's input came from when that is finer (it is decoded already)."""
    reduction = _spanning(source, box_width, box_height, size)
    if finder_size > 0:
        reduction = min(reduction, coarsest(source, finder_size, finder_size))
    return reduction


def _cut(source: Source, box: tuple[int, int, int, int], region: np.ndarray,
         size: int, finder_size: int) -> np.ndarray:
    """The box's pixels from the crop's decode (_crop_reduction), with the background
    (outside `region`, a 0/1 mask over the whole image at its own resolution) masked."""
    import cv2

    x0, y0, x1, y1 = box
    level = source.pixels(_crop_reduction(source, x1 - x0, y1 - y0, size, finder_size))
    level_height, level_width = level.shape[:2]
    to_level_x, to_level_y = level_width / source.width, level_height / source.height
    lx0, ly0 = math.floor(x0 * to_level_x), math.floor(y0 * to_level_y)
    lx1 = min(level_width, max(lx0 + 1, math.ceil(x1 * to_level_x)))
    ly1 = min(level_height, max(ly0 + 1, math.ceil(y1 * to_level_y)))
    # The region, resampled onto the patch's pixel grid (pixel centres aligned as cv2.resize
    # aligns them) and thresholded halfway: the same edge an upsampled mask would give.
    kx, ky = level_width / region.shape[1], level_height / region.shape[0]
    warp = np.array([[kx, 0.0, 0.5 * kx - 0.5 - lx0], [0.0, ky, 0.5 * ky - 0.5 - ly0]])
    inside = cv2.warpAffine(region.astype(np.float32), warp, (lx1 - lx0, ly1 - ly0),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0.0)
    # The drop's pixels onto a background canvas through a mask (copyTo): numpy's boolean
    # indexing took about 1 ms for a typical drop.
    keep = np.greater_equal(inside, 0.5).view(np.uint8)
    patch = np.full((ly1 - ly0, lx1 - lx0, level.shape[2]), BACKGROUND, dtype=level.dtype)
    cv2.copyTo(level[ly0:ly1, lx0:lx1], keep, patch)
    return patch


def _to_image(points: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """Contour points (pixel centres) from the mask's pixels to the image's."""
    if scale_x == 1.0 and scale_y == 1.0:
        return points
    scaled = (points.astype(np.float64) + 0.5) * np.array([scale_x, scale_y]) - 0.5
    return np.round(scaled).astype(np.int32)


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

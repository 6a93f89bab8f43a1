"""Crystals found in a drop: the boxes the crystal model's probability map gives, in the
original image's pixels, and the two numbers a user acts on (the largest crystal's size and
where to aim).

The contract between the crystal stage (pipeline) and what reports it (result file, summary
CSV, index, overlay, review page, history): a `Scored` carries `crystals: list[CrystalBox]`
when the bundle has a crystal model and None when it has none.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# A box counts as "as certain as the most certain one" within this share of its score: the
# target is the largest of those, so a big faint blob does not outvote a sharp crystal.
TARGET_SCORE_SHARE = 0.8


@dataclass(frozen=True)
class CrystalBox:
    """One crystal or tight cluster: `box` is (x0, y0, x1, y1) in original image pixels, x1 and
    y1 exclusive; `area_px` its crystal pixels (original pixel units); `score` the model's
    highest crystal probability inside it (0-1); `kind` a look when the model tells one."""

    box: tuple[int, int, int, int]
    area_px: int
    score: float
    kind: str | None = None

    @property
    def longest_side(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)

    @property
    def centre(self) -> tuple[int, int]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) // 2, (y0 + y1) // 2

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"box": list(self.box), "area_px": self.area_px,
                                  "score": round(self.score, 4)}
        if self.kind is not None:
            out["kind"] = self.kind
        return out


def largest_side(crystals: list[CrystalBox]) -> int:
    """The longest side of the largest crystal box, 0 when there is none."""
    return max((c.longest_side for c in crystals), default=0)


def target(crystals: list[CrystalBox]) -> tuple[int, int] | None:
    """Where to aim: the centre of the largest box among the most certain ones."""
    if not crystals:
        return None
    best = max(c.score for c in crystals)
    certain = [c for c in crystals if c.score >= TARGET_SCORE_SHARE * best]
    return max(certain, key=lambda c: (c.longest_side, c.score)).centre


# ------------------------------------------------------------------ from the model's output
# The bundle's `crystals` section (bundle.json): {"model", "input_size", "threshold",
# "min_area" (pixels at input_size), "agree_score"}; these are the values a section leaves out.
DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_AREA = 4
# A box at least this sure on a drop the classifier did not call crystals makes it uncertain
# (confidence.uncertain): two models disagree, so a person should look.
DEFAULT_AGREE_SCORE = 0.8
# The crystal model looks only in drops the classifier flags crystals_hit (its recall-first
# threshold): boxes say where the crystals of a crystals hit are. Everywhere (False), it drew
# boxes on bubbles, glints and precipitate in most crystal-free drops (docs/training.md).
DEFAULT_HITS_ONLY = True


@dataclass(frozen=True)
class CrystalSettings:
    """How a crystal probability map becomes boxes, from the bundle's `crystals` section."""

    input_size: int
    threshold: float = DEFAULT_THRESHOLD
    min_area: int = DEFAULT_MIN_AREA
    agree_score: float = DEFAULT_AGREE_SCORE
    hits_only: bool = DEFAULT_HITS_ONLY

    @classmethod
    def from_section(cls, section: Mapping[str, object], input_size: int = 0) -> CrystalSettings:
        """The section's values (`input_size` stands in for a section without one: the
        model's own input size); the defaults above where it says nothing."""
        return cls(input_size=int(_num(section.get("input_size"), input_size)),
                   threshold=float(_num(section.get("threshold"), DEFAULT_THRESHOLD)),
                   min_area=int(_num(section.get("min_area"), DEFAULT_MIN_AREA)),
                   agree_score=float(_num(section.get("agree_score"), DEFAULT_AGREE_SCORE)),
                   hits_only=bool(section.get("hits_only", DEFAULT_HITS_ONLY)))

    def as_record(self) -> dict[str, float | int | bool]:
        """What the runtime fingerprint hashes: a change of any of these rescores."""
        return {"input_size": self.input_size, "threshold": self.threshold,
                "min_area": self.min_area, "agree_score": self.agree_score,
                "hits_only": self.hits_only}


def _num(value: object, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return default


def from_probability(prob: np.ndarray, crop_box: tuple[int, int, int, int], *,
                     threshold: float = DEFAULT_THRESHOLD,
                     min_area: int = DEFAULT_MIN_AREA) -> list[CrystalBox]:
    """The crystal boxes of one probability map (N x N, or N x N x 1) of the crop cut from
    `crop_box` (x0, y0, x1, y1 in original pixels), most certain first.

    The crop step (preprocess.crop_drop) pads the box to a square with the box centred, then
    resizes the square to the model's size; this undoes that: map pixel (u, v) is original
    pixel (left + u * side / N, top + v * side / N), side the box's longer side. Components
    (8-connected) of the pixels at or above `threshold` with at least `min_area` map pixels are
    crystals; a box is clipped to the crop box (a component in the padding has no pixels of
    the image and is dropped); `area_px` is the component's pixels in original pixel units and
    `score` the highest probability inside it."""
    import cv2

    plane = np.asarray(prob, dtype=np.float32)
    if plane.ndim == 3:
        plane = plane[..., 0]
    size_y, size_x = plane.shape
    x0, y0, x1, y1 = crop_box
    width, height = x1 - x0, y1 - y0
    side = max(width, height)
    if side <= 0 or size_x == 0 or size_y == 0:
        return []
    scale_x, scale_y = side / size_x, side / size_y
    left, top = x0 - (side - width) / 2.0, y0 - (side - height) / 2.0
    above = np.greater_equal(plane, threshold).view(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
    boxes = []
    for k in range(1, count):
        cx, cy, cw, ch, area = (int(v) for v in stats[k])
        if area < max(1, min_area):
            continue
        inside = labels[cy:cy + ch, cx:cx + cw] == k
        score = float(plane[cy:cy + ch, cx:cx + cw][inside].max())
        box = (max(x0, math.floor(left + cx * scale_x)), max(y0, math.floor(top + cy * scale_y)),
               min(x1, math.ceil(left + (cx + cw) * scale_x)),
               min(y1, math.ceil(top + (cy + ch) * scale_y)))
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        boxes.append(CrystalBox(box, max(1, round(area * scale_x * scale_y)), score))
    boxes.sort(key=lambda c: (-c.score, c.box))
    return boxes


Box = tuple[int, int, int, int]


def intersection(a: Box, b: Box) -> int:
    """Pixels two (x0, y0, x1, y1) boxes share (x1/y1 exclusive)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0


def area(a: Box) -> int:
    return max(0, a[2] - a[0]) * max(0, a[3] - a[1])


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    inter = intersection(a, b)
    return inter / (area(a) + area(b) - inter) if inter else 0.0


def best_score(crystals: list[CrystalBox] | None) -> float | None:
    """The most certain box's score; None when there is no box (or no crystal model)."""
    return max((c.score for c in crystals), default=None) if crystals else None

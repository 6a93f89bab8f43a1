"""The crystals of an indexed image, for the well view and the image API: the boxes read from
the result file beside the image (the index keeps only their count and largest size), with the
count, the largest crystal's longest side and the target.

The result file is opened like the image itself (files.open_without_links: no link followed),
read only up to MAX_RESULT_BYTES, and trusted only while it describes the indexed version of the
image (the same sha256): a file rescored since the index last synced says nothing here until
the index catches up. A result without `crystals` (a bundle without a crystal model, an error)
or with malformed entries gives None: nothing is drawn rather than a guess.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..crystal_boxes import CrystalBox, largest_side, target
from ..imageio import is_image_name
from ..results import RESULT_SUFFIX, SCHEMA
from .files import open_without_links

# A result with hundreds of boxes is a few tens of kB; a file larger than this is not ours.
MAX_RESULT_BYTES = 1 << 20


@dataclass(frozen=True)
class Crystals:
    """What the well view draws and the API reports for one image."""

    boxes: list[CrystalBox]
    target: tuple[int, int] | None

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def largest_px(self) -> int:
        return largest_side(self.boxes)

    def as_dict(self) -> dict[str, Any]:
        """The result file's names (docs/results.md): crystals, crystal_count,
        largest_crystal_px, target."""
        return {"crystals": [box.as_dict() for box in self.boxes], "crystal_count": self.count,
                "largest_crystal_px": self.largest_px,
                "target": list(self.target) if self.target else None}


def crystals_of(row: dict[str, Any]) -> Crystals | None:
    """The crystals the result file beside the indexed image `row` reports (None: no crystal
    model scored it, the file is missing, damaged or of another version of the image)."""
    record = _result_record(str(row["path"]))
    if record is None or (record.get("image") or {}).get("sha256") != row.get("sha256"):
        return None
    entries = record.get("crystals")
    if not isinstance(entries, list):
        return None
    boxes = [_box(entry) for entry in entries]
    if any(box is None for box in boxes):
        return None
    found = [box for box in boxes if box is not None]
    aim = _point(record.get("target"))
    return Crystals(found, aim if aim is not None else target(found))


def _result_record(image: str) -> dict[str, Any] | None:
    opened = (open_without_links(f"{image}{RESULT_SUFFIX}")
              if is_image_name(os.path.basename(image)) else None)
    if opened is None:
        return None
    with opened:
        data = opened.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        return None
    try:
        record = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) and record.get("schema") == SCHEMA else None


def _box(entry: Any) -> CrystalBox | None:
    """One `crystals` entry as a CrystalBox; None when any part of it is malformed."""
    if not isinstance(entry, dict):
        return None
    box, area, score, kind = (entry.get("box"), entry.get("area_px"), entry.get("score"),
                              entry.get("kind"))
    if not (isinstance(box, list) and len(box) == 4 and all(_is_int(v) for v in box)):
        return None
    x0, y0, x1, y1 = box
    if not (0 <= x0 < x1 and 0 <= y0 < y1 and _is_int(area) and _is_number(score)
            and (kind is None or isinstance(kind, str))):
        return None
    return CrystalBox((x0, y0, x1, y1), int(area), float(score), kind)


def _point(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    return None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))

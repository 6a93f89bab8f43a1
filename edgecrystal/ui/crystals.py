"""The crystals of an indexed image, for the well view and the image API: the boxes read from
the result file beside the image (the index keeps only their count and largest size), with the
count, the largest crystal's longest side and the target.

The result file is opened like the image itself (files.open_without_links: no link followed),
read only up to MAX_RESULT_BYTES, and trusted only while it describes the indexed version of the
image (the same sha256): a file rescored since the index last synced says nothing here until
the index catches up. A result without `crystals` (a bundle without a crystal model, an error)
or with malformed entries (ResultRecord.from_json refuses them) gives None: nothing is drawn
rather than a guess.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ..crystal_boxes import CrystalBox, largest_side
from ..imageio import is_image_name
from ..index.rows import ImageRow
from ..results import RESULT_SUFFIX, ResultRecord, ResultSchemaError
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


def crystals_of(row: ImageRow) -> Crystals | None:
    """The crystals the result file beside the indexed image `row` reports (None: no crystal
    model scored it, the file is missing, damaged or of another version of the image)."""
    record = _result_record(str(row["path"]))
    if record is None or record.crystals is None or record.image.sha256 != row.get("sha256"):
        return None
    return Crystals(record.crystals, record.target)


def _result_record(image: str) -> ResultRecord | None:
    """The result file beside `image` read through the one reader (ResultRecord.from_json),
    opened without following links and no larger than MAX_RESULT_BYTES."""
    opened = (open_without_links(f"{image}{RESULT_SUFFIX}")
              if is_image_name(os.path.basename(image)) else None)
    if opened is None:
        return None
    with opened:
        data = opened.read(MAX_RESULT_BYTES + 1)
    if len(data) > MAX_RESULT_BYTES:
        return None
    try:
        parsed = json.loads(data)
        return ResultRecord.from_json(parsed) if isinstance(parsed, dict) else None
    except (ValueError, RecursionError, ResultSchemaError):
        return None

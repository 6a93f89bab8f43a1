"""Result files with the crystal fields of issue 25 (`crystals`, `crystal_count`,
`largest_crystal_px`, `target`: docs/results.md), for the review page's tests: an existing
result file (index_helpers.write_result_for) given the boxes a crystal model found."""

from __future__ import annotations

import json
from pathlib import Path

from edgecrystal.crystal_boxes import CrystalBox, largest_side, target


def add_crystals(result: Path, boxes: list[CrystalBox]) -> Path:
    """Write `boxes` into the result file `result` under the result file's field names."""
    record = json.loads(result.read_text())
    aim = target(boxes)
    record.update({"crystals": [box.as_dict() for box in boxes], "crystal_count": len(boxes),
                   "largest_crystal_px": largest_side(boxes),
                   "target": list(aim) if aim else None})
    result.write_text(json.dumps(record))
    return result

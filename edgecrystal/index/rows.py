"""A result file's record -> the index's row (and its scores). Pure: no database here."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..naming import NameReader
from ..results import RESULT_SUFFIX


@dataclass
class IndexRow:
    """One image's row and its class scores, ready for `Index.upsert`."""

    values: dict[str, Any]
    scores: dict[str, float]

    @property
    def path(self) -> str:
        return str(self.values["path"])


def image_key(image: str | os.PathLike[str]) -> str:
    """The index's key for an image: its real, absolute path (links resolved), so that the same
    file reached two ways is one row, and the review page can check a path has not moved."""
    return os.path.realpath(os.fspath(image))


def row_from_record(image: str | os.PathLike[str], record: dict[str, Any],
                    reader: NameReader) -> IndexRow:
    path = image_key(image)
    name = reader.read(Path(path))
    info = record.get("image") or {}
    model = record.get("model") or {}
    drop = record.get("drop") or {}
    given = drop.get("box")
    box: list[Any] = given if isinstance(given, list) and len(given) == 4 else [None] * 4
    scores = {str(k): float(v) for k, v in (record.get("scores") or {}).items()}
    label = record.get("label")
    error = record.get("error") or {}
    values: dict[str, Any] = {
        "path": path,
        "sha256": info.get("sha256"),
        "size_bytes": info.get("size_bytes"),
        "width": info.get("width"),
        "height": info.get("height"),
        "plate": name.plate[:255],
        "well": name.well,
        "drop_number": name.drop,
        "inspection": name.inspection[:255] if name.inspection else None,
        # The name's date where it has one, else when the imager wrote the file.
        "inspected_at": name.inspected_at or parse_time(info.get("mtime")),
        "name_layout": name.layout,
        "name_understood": name.understood,
        "name_note": name.note[:255] or None,
        "status": str(record.get("status") or "error")[:16],
        "error_kind": error.get("kind"),
        "error_reason": error.get("reason"),
        "label": label,
        "label_score": scores.get(label) if label else None,
        "crystals_hit": _flag(record.get("crystals_hit")),
        "uncertain": _flag(record.get("uncertain")),
        "drop_found": drop.get("found") if drop else None,
        "box_x0": box[0], "box_y0": box[1], "box_x1": box[2], "box_y1": box[3],
        "area_fraction": drop.get("area_fraction") if drop else None,
        "fingerprint": model.get("fingerprint"),
        "backend": model.get("backend"),
        "precision": model.get("precision"),
        "scored_at": parse_time(record.get("created")),
        "indexed_at": dt.datetime.now(dt.timezone.utc),
    }
    return IndexRow(values, scores)


def _flag(value: object) -> bool | None:
    """A recorded true/false; None for a result without one (an error, an older file)."""
    return value if isinstance(value, bool) else None


def image_of_result(result: str | os.PathLike[str]) -> Path:
    text = os.fspath(result)
    return Path(text[: -len(RESULT_SUFFIX)] if text.endswith(RESULT_SUFFIX) else text)


def parse_time(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)

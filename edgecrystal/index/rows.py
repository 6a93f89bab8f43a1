"""A result file's record -> the index's row (and its scores); the rows' types. Pure: no
database here.

`ImageValues` is what one scoring writes to the `images` table (index/schema.py's columns but
the key and a person's label), `ImageRow` one row as the index hands it back, with its class
scores. tests/test_index_rows.py keeps both equal to the table's columns.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from ..naming import NameReader
from ..results import RESULT_SUFFIX, ResultRecord


class ImageValues(TypedDict):
    path: str
    sha256: str | None
    size_bytes: int | None
    width: int | None
    height: int | None
    plate: str
    well: str | None
    drop_number: int | None
    inspection: str | None
    inspected_at: dt.datetime | None
    name_layout: str
    name_understood: bool
    name_note: str | None
    status: str
    error_kind: str | None
    error_reason: str | None
    label: str | None
    label_score: float | None
    crystals_hit: bool | None
    uncertain: bool | None
    drop_found: bool | None
    box_x0: int | None
    box_y0: int | None
    box_x1: int | None
    box_y1: int | None
    area_fraction: float | None
    crystal_count: int | None  # None: no crystal model scored it
    largest_crystal_px: int | None
    fingerprint: str | None
    backend: str | None
    precision: str | None
    scored_at: dt.datetime | None
    indexed_at: dt.datetime


class ImageRow(ImageValues):
    id: int
    human_label: str | None
    human_by: str | None
    human_at: dt.datetime | None
    scores: dict[str, float]


class HitRow(ImageRow):
    """A row of a hits list: `hit_score` is the score it was chosen by (None: not scored for
    that class, a person's crystals label)."""

    hit_score: float | None


@dataclass
class IndexRow:
    """One image's row and its class scores, ready for `Index.upsert`."""

    values: ImageValues
    scores: dict[str, float]

    @property
    def path(self) -> str:
        return self.values["path"]


def image_key(image: str | os.PathLike[str]) -> str:
    """The index's key for an image: its real, absolute path (links resolved), so that the same
    file reached two ways is one row, and the review page can check a path has not moved."""
    return os.path.realpath(os.fspath(image))


def row_from_record(image: str | os.PathLike[str], record: ResultRecord,
                    reader: NameReader) -> IndexRow:
    path = image_key(image)
    name = reader.read(Path(path))
    drop = record.drop
    box = drop.box if drop is not None and drop.box is not None else (None, None, None, None)
    label = record.label
    error = record.error
    values = ImageValues(
        path=path,
        sha256=record.image.sha256,
        size_bytes=record.image.size_bytes,
        width=record.image.width,
        height=record.image.height,
        plate=name.plate[:255],
        well=name.well,
        drop_number=name.drop,
        inspection=name.inspection[:255] if name.inspection else None,
        # The name's date where it has one, else when the imager wrote the file.
        inspected_at=name.inspected_at or parse_time(record.image.mtime),
        name_layout=name.layout,
        name_understood=name.understood,
        name_note=name.note[:255] or None,
        status=(record.status or "error")[:16],
        error_kind=error.kind if error else None,
        error_reason=error.reason if error else None,
        label=label,
        label_score=record.scores.get(label) if label else None,
        crystals_hit=record.crystals_hit,
        uncertain=record.uncertain,
        drop_found=drop.found if drop else None,
        box_x0=box[0], box_y0=box[1], box_x1=box[2], box_y1=box[3],
        area_fraction=drop.area_fraction if drop else None,
        crystal_count=record.crystal_count,
        largest_crystal_px=record.largest_crystal_px,
        fingerprint=record.fingerprint,
        backend=_text(record.model.get("backend")),
        precision=_text(record.model.get("precision")),
        scored_at=parse_time(record.created),
        indexed_at=dt.datetime.now(dt.timezone.utc),
    )
    return IndexRow(values, dict(record.scores))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


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

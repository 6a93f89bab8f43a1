"""`edgecrystal index sync ROOT`: bring the index up to date from the result files.

The result files beside the images are the record of work done; the index is a copy that can
always be rebuilt from them. That is how it catches up after its database was away.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from ..naming import NameReader
from ..results import RESULT_SUFFIX, ResultSchemaError, read_result
from .rows import IndexRow, image_of_result, row_from_record
from .store import BATCH_ROWS, Index, iter_chunks

log = logging.getLogger(__name__)


def result_files(root: Path) -> Iterator[Path]:
    """Every result file under `root` whose image is still there, in folder order."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(RESULT_SUFFIX) and not name.startswith("."):
                result = Path(folder) / name
                if image_of_result(result).exists():
                    yield result


def read_rows(results: list[Path], reader: NameReader) -> list[IndexRow]:
    rows = []
    for result in results:
        try:
            record = read_result(result)
        except ResultSchemaError as exc:  # a newer edgecrystal's file: left for that one
            log.warning("skipped: %s", exc)
            continue
        if record is None:
            log.warning("not a result file, skipped: %s", result)
            continue
        rows.append(row_from_record(image_of_result(result), record, reader))
    return rows


def sync(index: Index, root: Path, reader: NameReader,
         progress: Callable[[int], None] | None = None) -> int:
    """Upsert every result under `root`; returns how many rows were written."""
    written = 0
    for chunk in iter_chunks(result_files(root), BATCH_ROWS):
        written += index.upsert(read_rows(chunk, reader))
        if progress is not None:
            progress(written)
    return written

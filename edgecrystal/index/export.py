"""`edgecrystal index export-labels OUT`: the images people labelled, as a training folder in
the project's labels.csv layout (images/ + labels.csv with image,mask,label,plate,well), so
retraining on corrected labels is `edgecrystal train classifier OUT ...`."""

from __future__ import annotations

import csv
import hashlib
import io
import shutil
from pathlib import Path

from ..atomic import write_text
from ..dataset import LABELS_FILE
from ..errors import UsageError
from .store import Index


def export_labels(index: Index, out: Path) -> tuple[int, int]:
    """Copy every human-labelled image that still exists into OUT/images; returns (written,
    missing)."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder; choose a new one")
    rows = index.human_labelled()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["image", "mask", "label", "plate", "well", "labelled_by", "source"])
    written = missing = 0
    for row in rows:
        source = Path(row["path"])
        if not source.is_file():
            missing += 1
            continue
        # Names from different plates collide (A01_1.jpg everywhere): prefix a short hash of
        # the source path, which also keeps the name free of folder characters.
        digest = hashlib.sha256(row["path"].encode("utf-8")).hexdigest()[:10]
        name = f"{digest}_{source.name}"
        shutil.copy2(source, images / name)
        writer.writerow([f"images/{name}", "", row["human_label"], row["plate"],
                         row["well"] or "", row["human_by"] or "", row["path"]])
        written += 1
    write_text(out / LABELS_FILE, table.getvalue())
    return written, missing

"""Data set layouts: the project's own (labels.csv) and the common class-per-folder one.

The project's layout (what `edgecrystal synth` writes, and what users can write for their data):

    DATA/
      labels.csv      image,mask,label[,style,plate,well,...]  paths relative to DATA
      images/...      the well images (any format the decoder reads)
      masks/...       one binary drop mask per image (PNG, 0 = background, >0 = drop)

`mask` may be empty for images without one (the classifier can still train on them with
--crop finder or none). The class-per-folder layout, as MARCO users have it, is accepted too:
`DATA/<class>/*.jpg` or `DATA/train/<class>/*.jpg` (labels from folder names, no masks).

A folder of real photos with hand-drawn masks (the layout of the shared real samples) is read
too: `labels.csv` with `path,label` (label may be empty) and `masks/manifest.csv` with
`path,mask[,drops,quality,note]`, paths relative to DATA. Without labels.csv the manifest alone
lists the images; without the manifest, labels.csv's `path,label` alone does (no masks).
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from . import DEFAULT_CLASSES
from .errors import DataError, UsageError
from .imageio import is_image_name

LABELS_FILE = "labels.csv"
# A spreadsheet's "CSV UTF-8" starts with a byte-order mark, which plain utf-8 would keep in
# the first column's name (`\ufeffimage`: "lacks column image"); utf-8-sig reads both.
SHEET_ENCODING = "utf-8-sig"
MASK_MANIFEST = "masks/manifest.csv"


@dataclass(frozen=True)
class Record:
    image: Path
    mask: Path | None
    label: str | None
    meta: dict[str, str] = field(default_factory=dict)


@dataclass
class Dataset:
    root: Path
    records: list[Record]
    layout: str  # "labels.csv" or "class-folders"

    @property
    def classes_seen(self) -> list[str]:
        return sorted({r.label for r in self.records if r.label})

    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.label or "" for r in self.records).items()))

    def with_masks(self) -> list[Record]:
        return [r for r in self.records if r.mask is not None]

    @property
    def carries_masks(self) -> bool:
        """Whether the layout can list drop masks (labels.csv's `mask` column, the mask
        manifest); class folders cannot."""
        return self.layout != "class-folders"

    def labelled(self) -> list[Record]:
        """What a classifier trains and is evaluated on. Unlabelled rows (the real samples'
        empty label) are skipped there, never an error: the finder still uses their masks."""
        return [r for r in self.records if r.label]

    def unlabelled(self) -> list[Record]:
        return [r for r in self.records if not r.label]

    def summary(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "layout": self.layout,
            "images": len(self.records),
            "with_masks": len(self.with_masks()),
            "classes": self.class_counts(),
        }


def canonical_label(label: str | None) -> str | None:
    """A label as the bundles spell it (the default four, whatever their case); empty is None
    (unlabelled). Other layouts capitalise the default classes (MARCO's class folders are
    Clear, Crystals, Precipitate, Other). Only case is folded: another word ("Crystal") is kept
    as written, for the class check to question ("did you mean 'crystals'?", datacheck.py)
    rather than to be guessed here."""
    text = (label or "").strip()
    if not text:
        return None
    return text.lower() if text.lower() in DEFAULT_CLASSES else text


def load_dataset(path: str | Path) -> Dataset:
    root = Path(path)
    if not root.exists():
        raise UsageError(f"data set {root} does not exist")
    if not root.is_dir():
        raise UsageError(f"data set {root} is a file, not a folder")
    if (root / MASK_MANIFEST).is_file() and not _has_column(root / LABELS_FILE, "image"):
        return _load_manifest(root)
    if (root / LABELS_FILE).is_file():
        return _load_labels_csv(root)
    for base in (root / "train", root):
        if base.is_dir():
            records = _load_class_folders(base)
            if records:
                return Dataset(root, records, "class-folders")
    raise DataError(
        f"{root} holds no {LABELS_FILE} and no class folders with images "
        "(see docs/data.md for the layouts edgecrystal reads)"
    )


def _load_labels_csv(root: Path) -> Dataset:
    path = root / LABELS_FILE
    with path.open(newline="", encoding=SHEET_ENCODING) as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        # `path,label` (the real samples' own labels.csv) names the image column `path`.
        column = "path" if "path" in columns and "image" not in columns else "image"
        missing = [c for c in (column, "label") if c not in columns]
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(missing)} (has {columns})")
        records = []
        for row in reader:
            image = (row.get(column) or "").strip()
            if not image:
                continue
            mask = (row.get("mask") or "").strip()
            label = canonical_label(row.get("label"))
            meta = {k: (v or "") for k, v in row.items()
                    if k not in (column, "mask", "label") and k is not None}
            records.append(Record(root / image, root / mask if mask else None, label, meta))
    if not records:
        raise DataError(f"{path} lists no images")
    return Dataset(root, records, "labels.csv")


def _has_column(path: Path, column: str) -> bool:
    if not path.is_file():
        return False
    with path.open(newline="", encoding=SHEET_ENCODING) as fh:
        return column in (csv.DictReader(fh).fieldnames or [])


def _load_manifest(root: Path) -> Dataset:
    """Real photos with hand-drawn masks: masks/manifest.csv (path,mask,...) plus labels.csv
    (path,label) where there is one."""
    labels: dict[str, str] = {}
    if (root / LABELS_FILE).is_file():
        with (root / LABELS_FILE).open(newline="", encoding=SHEET_ENCODING) as fh:
            labels = {(row.get("path") or "").strip(): (row.get("label") or "").strip()
                      for row in csv.DictReader(fh)}
    manifest = root / MASK_MANIFEST
    with manifest.open(newline="", encoding=SHEET_ENCODING) as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("path", "mask") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{manifest} lacks column(s) {', '.join(missing)}")
        records = []
        for row in reader:
            image = (row.get("path") or "").strip()
            if not image:
                continue
            mask = (row.get("mask") or "").strip()
            meta = {k: (v or "") for k, v in row.items() if k not in ("path", "mask") and k}
            records.append(Record(root / image, root / mask if mask else None,
                                  canonical_label(labels.get(image)), meta))
    if not records:
        raise DataError(f"{manifest} lists no images")
    return Dataset(root, records, "mask-manifest")


def _load_class_folders(base: Path) -> list[Record]:
    records = []
    for cls_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        for img in sorted(cls_dir.rglob("*")):
            if img.is_file() and is_image_name(img.name):
                records.append(Record(img, None, canonical_label(cls_dir.name), {}))
    return records


def write_labels_csv(root: Path, rows: list[dict[str, str]], extra: list[str]) -> None:
    """Write labels.csv with the required columns first, then `extra` metadata columns."""
    import io

    from .atomic import write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["image", "mask", "label", *extra],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text(root / LABELS_FILE, buf.getvalue())

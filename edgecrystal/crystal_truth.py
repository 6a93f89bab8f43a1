"""Where the crystals really are, for measuring a crystal model: boxes a person drew (the
`crystals.csv` layout of the shared real samples) or a synthetic image's crystal mask (the
`crystals` column of labels.csv, as `edgecrystal synth` writes it). One reader for both, below
evaluate (crystal_eval.py) and training alike.

CSV: `path,x0,y0,x1,y1,kind,certainty,note`, one row per box in original pixels (x1/y1
exclusive); paths relative to DATA, else to the CSV's folder. `kind` single, cluster, needles,
shower, or `none` for an image checked to hold no crystal (its box columns empty); `certainty`
sure or doubtful (empty: sure). Masks: a PNG the image's size, crystal pixels above 127; each
8-connected component is one (sure) box, and an empty mask means no crystal.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError, UsageError

COLUMNS = ("path", "x0", "y0", "x1", "y1", "kind", "certainty")
NONE_KIND = "none"
MASK_COLUMN = "crystals"


@dataclass(frozen=True)
class TrueBox:
    box: tuple[int, int, int, int]
    kind: str
    certainty: str  # "sure" | "doubtful"


@dataclass
class ImageTruth:
    """One image of the CSV: its boxes, or none (checked to hold no crystal)."""

    name: str  # as the CSV writes it
    path: Path
    boxes: list[TrueBox]
    checked_none: bool = False

    def split(self, certainty: str) -> tuple[list[TrueBox], list[TrueBox]]:
        """(boxes that count, regions to ignore) under `certainty`."""
        if certainty == "all":
            return list(self.boxes), []
        return ([b for b in self.boxes if b.certainty == "sure"],
                [b for b in self.boxes if b.certainty != "sure"])


def read_truth(csv_path: Path, data_dir: Path) -> list[ImageTruth]:
    """The CSV's images in file order; a DataError naming the line for anything malformed."""
    if not csv_path.is_file():
        raise UsageError(f"--crystals {csv_path}: no such file")
    images: dict[str, ImageTruth] = {}
    # utf-8-sig: a spreadsheet's "CSV UTF-8" starts with a byte-order mark (dataset.py too).
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{csv_path} lacks column(s) {', '.join(missing)} (expected "
                            f"{','.join(COLUMNS)},note)")
        for line, row in enumerate(reader, start=2):
            name = (row.get("path") or "").strip()
            if not name:
                continue
            where = f"{csv_path}:{line}"
            image = images.get(name)
            if image is None:
                image = images[name] = ImageTruth(name, _resolve(name, data_dir, csv_path,
                                                                 where), [])
            kind = (row.get("kind") or "").strip()
            certainty = (row.get("certainty") or "").strip() or "sure"
            if certainty not in ("sure", "doubtful"):
                raise DataError(f"{where}: certainty {certainty!r} is not sure or doubtful")
            if kind == NONE_KIND:
                image.checked_none = True
                continue
            image.boxes.append(TrueBox(_box(row, where), kind, certainty))
    for image in images.values():
        if image.checked_none and image.boxes:
            raise DataError(f"{csv_path}: {image.name} is marked {NONE_KIND} and has boxes")
    if not images:
        raise DataError(f"{csv_path} lists no images")
    return list(images.values())


def truth_from_masks(images: list[tuple[Path, str]], root: Path) -> list[ImageTruth]:
    """The true boxes of synthetic data: (image, its crystal mask relative to `root`, the
    labels.csv `crystals` column; "" for none) -> each mask's 8-connected components; an
    empty mask: an image with no crystal."""
    import cv2

    from .imageio import read_image

    truth = []
    for image, mask_rel in images:
        rel = mask_rel.strip()
        if not rel:
            continue
        mask = read_image(root / rel).max(axis=2) > 127
        count, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8),
                                                             connectivity=8)
        boxes = [TrueBox((int(x), int(y), int(x + w), int(y + h)), "mask", "sure")
                 for x, y, w, h, _area in stats[1:count]]
        name = str(image.relative_to(root)) if image.is_relative_to(root) else str(image)
        truth.append(ImageTruth(name, image, boxes, checked_none=not boxes))
    if not truth:
        raise DataError(f"{root} names no crystal masks (a "
                        f"`{MASK_COLUMN}` column in labels.csv, as `edgecrystal synth` writes)")
    return truth


def _resolve(name: str, data_dir: Path, csv_path: Path, where: str) -> Path:
    for base in (data_dir, csv_path.parent):
        path = Path(name) if Path(name).is_absolute() else base / name
        if path.is_file():
            return path
    raise DataError(f"{where}: image {name} not found under {data_dir} or {csv_path.parent}")


def _box(row: dict[str, str | None], where: str) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = (int((row.get(k) or "").strip()) for k in ("x0", "y0", "x1", "y1"))
    except ValueError:
        raise DataError(f"{where}: x0,y0,x1,y1 must be whole pixels") from None
    if x1 <= x0 or y1 <= y0 or x0 < 0 or y0 < 0:
        raise DataError(f"{where}: box ({x0}, {y0}, {x1}, {y1}) is empty or negative "
                        "(x1 and y1 are exclusive)")
    return x0, y0, x1, y1

"""Choosing calibration images and turning them into model inputs with the runtime's own
preprocessing (the INT8 ranges are only right if calibration sees what serving will feed).

Default count: 256 images per model. Calibration estimates activation ranges (per-tensor
histograms); NVIDIA and ONNX Runtime both find a few hundred representative images enough and
the ranges stop moving well before 500, while time and (for entropy calibration) histogram
memory grow with every image. Capped at 1024. The selection is stratified: round-robin over
(label, style/imager) groups, shuffled by the seed inside each group, so rare classes (crystals)
and every imager style set the ranges rather than only the common clear drops.

`--calib` also takes a folder of the imager's own images, unlabelled (the pictures the model will
really see): any folder that is none of the data set layouts (docs/data.md), or whose "class
folders" are an imager's plate folders (every name read by an imager layout). Every input image
below it is a record, stratified by imager layout and plate as `edgecrystal.naming` reads
them from the names and folders (the folder where names say nothing).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecrystal.dataset import Dataset, Record, load_dataset
from edgecrystal.errors import DataError, ImageError, UsageError
from edgecrystal.imageio import Picture, is_image_name
from edgecrystal.interface import INPUT_NAME
from edgecrystal.naming import NameReader

DEFAULT_COUNT = 256
MAX_COUNT = 1024
MIN_COUNT = 8
# "imager_plate": set only for an unlabelled image folder's records (labelled data sets keep
# their style/imager strata, so their choice of images does not change).
STRATA_COLUMNS = ("style", "imager_plate", "imager")
IMAGE_FOLDER = "image-folder"
# Models that see the drop crop (the crystal model runs on the finder's crop too).
CROP_MODELS = ("classifier", "crystals")


@dataclass
class CalibrationSet:
    """Model inputs for one model plus where they came from."""

    model: str
    inputs: np.ndarray  # N x size x size x 3 uint8
    images: list[dict[str, str]] = field(default_factory=list)  # path (relative), sha256, label
    crop: str = ""  # classifier: "mask" (ground truth), "finder", or "none"
    skipped: list[str] = field(default_factory=list)  # one line per unreadable image


def check_count(count: int) -> int:
    if count < MIN_COUNT or count > MAX_COUNT:
        raise UsageError(f"--calib-count must be between {MIN_COUNT} and {MAX_COUNT} "
                         f"(got {count})")
    return count


def stratum(record: Record) -> tuple[str, str]:
    extra = next((record.meta[c] for c in STRATA_COLUMNS if record.meta.get(c)), "")
    return (record.label or "", extra)


def choose(records: list[Record], count: int, seed: int = 0) -> list[Record]:
    """Up to `count` records, round-robin over strata, each stratum shuffled by `seed`."""
    groups: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        groups[stratum(r)].append(r)
    rng = np.random.default_rng(seed)
    queues = []
    for key in sorted(groups):
        members = groups[key]
        queues.append([members[i] for i in rng.permutation(len(members))])
    chosen: list[Record] = []
    depth = 0
    while len(chosen) < count and any(depth < len(q) for q in queues):
        chosen.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return chosen[:count]


def _nothing(name: str) -> bool:
    return False


def calibration_data(data: str | Path, is_output: Callable[[str], bool] = _nothing) -> Dataset:
    """The records `--calib DATA` names: a data set in one of its layouts, else the imager's own
    images in the folder (`image_folder`)."""
    try:
        dataset = load_dataset(data)
    except DataError:
        return image_folder(Path(data), is_output)
    if dataset.layout == "class-folders" and _imager_names(dataset.records):
        return image_folder(Path(data), is_output)  # plate folders, not classes
    return dataset


def image_folder(root: Path, is_output: Callable[[str], bool] = _nothing) -> Dataset:
    """Every image below `root` as `score` would take it (dot files and folders, linked folders
    and, by `is_output`, what edgecrystal wrote there are left out: the caller passes
    results.is_own_output, a layer above this one), unlabelled, with the imager layout and
    plate the name says."""
    reader = NameReader()
    records = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = Path(folder) / name
            if (is_image_name(name) and not name.startswith(".") and not is_output(name)
                    and path.is_file()):
                read = reader.read(path.relative_to(root))
                records.append(Record(path, None, None, {
                    "imager_plate": f"{read.layout} {read.plate}", "imager": read.layout,
                    "plate": read.plate}))
    if not records:
        raise DataError(f"{root} holds no images: --calib takes a data set (docs/data.md) or "
                        "a folder of the imager's own images")
    return Dataset(root, records, IMAGE_FOLDER)


def _imager_names(records: list[Record]) -> bool:
    reader = NameReader()
    return all(reader.read(r.image.name).understood for r in records)


def load_pictures(records: list[Record], need: int) -> tuple[list, list[str]]:
    """(record, picture, sha256, mask-or-None) for readable images (the picture as the runtime
    reads it: imageio.Picture); one line per unreadable one."""
    from edgecrystal.imageio import load_picture, read_image

    good, skipped = [], []
    for r in records:
        try:
            picture = load_picture(r.image)
            picture.pixels(1)  # a file the runtime could not decode is skipped here, not later
            mask = None
            if r.mask is not None and r.mask.is_file():
                mask = read_image(r.mask)[..., 0] > 0
        except ImageError as exc:
            skipped.append(str(exc))
            continue
        good.append((r, picture, picture.sha256, mask))
    if len(good) < min(need, MIN_COUNT):
        cause = f"; {len(skipped)} unreadable, first: {skipped[0]}" if skipped else ""
        raise DataError(f"need at least {min(need, MIN_COUNT)} readable images, "
                        f"found {len(good)}{cause}")
    return good, skipped


def calibration_sets(data: str | Path, sizes: dict[str, int], count: int = DEFAULT_COUNT,
                     seed: int = 0, finder_onnx: Path | None = None, threshold: float = 0.5,
                     margin: float = 0.05, finder_size: int = 0,
                     is_output: Callable[[str], bool] = _nothing,
                     exclude: frozenset[str] = frozenset(),
                     ) -> dict[str, CalibrationSet]:
    """Calibration inputs for each model in `sizes` ({"finder": 512, "classifier": 299}).
    `exclude`: image paths (relative to the data set, as CalibrationSet.images has them) not to
    choose: the INT8 gate's held-out images are the calibration's complement.

    Classifier and crystal-model inputs are drop crops (each at its model's size, from the same
    masks): from the ground-truth mask when the record has one, else
    from the finder's prediction (ONNX Runtime on `finder_onnx`), else the whole image, cut as
    scoring cuts them (`finder_size`: Bundle.crop_finder_size). `data` may also be a folder of
    unlabelled images (`calibration_data`).
    """
    from edgecrystal import preprocess

    dataset = calibration_data(data, is_output)
    candidates = [r for r in dataset.records if _rel(r.image, dataset.root) not in exclude]
    if not candidates:
        raise DataError(f"{data} has no images besides the {len(exclude)} excluded")
    records = choose(candidates, count if exclude else check_count(count), seed)
    pictures, skipped = load_pictures(records, count)
    images = [{"path": _rel(r.image, dataset.root), "sha256": sha, "label": r.label or ""}
              for r, _, sha, _ in pictures]
    out: dict[str, CalibrationSet] = {}
    if "finder" in sizes:
        size = sizes["finder"]
        batch = np.stack([preprocess.finder_input(picture, size)
                          for _, picture, _, _ in pictures])
        out["finder"] = CalibrationSet("finder", batch, images, "", skipped)
    croppers = [m for m in CROP_MODELS if m in sizes]
    if croppers:
        masks, how = _drop_masks(pictures, finder_onnx)
        for model in croppers:
            crops = [_crop(picture, mask, sizes[model], threshold, margin, finder_size)
                     for (_, picture, _, _), mask in zip(pictures, masks, strict=True)]
            out[model] = CalibrationSet(model, np.stack(crops), images, how, skipped)
    return out


def _drop_masks(pictures: list, finder_onnx: Path | None
                ) -> tuple[list[np.ndarray | None], str]:
    """Each picture's drop mask (ground truth, else the finder's, else None: the whole image)
    and how they were made ("finder+mask"...)."""
    finder = _FinderOnnx(finder_onnx) if finder_onnx else None
    masks: list[np.ndarray | None] = []
    how = set()
    for _, picture, _, mask in pictures:
        if mask is not None:
            how.add("mask")
        elif finder is not None:
            mask = finder.mask(picture)
            how.add("finder")
        else:
            how.add("none")
        masks.append(mask)
    return masks, "+".join(sorted(how))


def _crop(picture: Picture, mask: np.ndarray | None, size: int, threshold: float, margin: float,
          finder_size: int) -> np.ndarray:
    """The drop crop at `size`, cut as scoring cuts it (the whole image without a mask)."""
    from edgecrystal import preprocess

    crop = (preprocess.crop_drop(picture, mask, size, threshold=threshold, margin=margin,
                                 finder_size=finder_size)
            if mask is not None else
            preprocess.full_image(picture, size, finder_size=finder_size))
    return crop.pixels


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


class _FinderOnnx:
    """The finder through ONNX Runtime, for crops of images without a ground-truth mask."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.size = int(self.sess.get_inputs()[0].shape[1])

    def mask(self, picture: Picture) -> np.ndarray:
        """The finder's probabilities at its own resolution (what the crop step takes)."""
        from edgecrystal import preprocess

        x = preprocess.finder_input(picture, self.size)[None]
        return np.asarray(self.sess.run(None, {INPUT_NAME: x})[0][0])

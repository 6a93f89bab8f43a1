"""Training data: images read once through imageio (as Pictures: decoded at the resolution each
step asks for, as the runtime decodes them), turned into model inputs by the one preprocessing
(finder_input, crop_drop, full_image), held in memory as uint8 arrays, split the
paper's way (finder 7:3, classifier 3:2 stratified by class), and served in augmented batches."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import preprocess
from ..dataset import Dataset, Record
from ..errors import DataError, UsageError
from ..imageio import Picture, load_picture, read_image

log = logging.getLogger(__name__)


@dataclass
class Sample:
    """One image with its ground truth (mask at the image's size; None when absent)."""

    path: Path
    picture: Picture
    mask: np.ndarray | None
    label: str | None

    @property
    def rgb(self) -> np.ndarray:
        """The full-resolution pixels (decoded once, on first use)."""
        return self.picture.pixels(1)


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A drop mask file as a bool array (anything non-zero is drop), checked against the image."""
    pixels = read_image(path)
    mask = pixels.max(axis=2) > 0
    if mask.shape != shape:
        raise DataError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, its image is "
                        f"{shape[1]}x{shape[0]}")
    return mask


def load_samples(records: Sequence[Record], masks: bool = True) -> list[Sample]:
    out = []
    for rec in records:
        picture = load_picture(rec.image)
        mask = (read_mask(rec.mask, (picture.height, picture.width))
                if (masks and rec.mask is not None) else None)
        out.append(Sample(rec.image, picture, mask, rec.label))
    return out


def mask_records(ds: Dataset) -> list[Record]:
    recs = ds.with_masks()
    if len(recs) < 2:
        raise DataError(f"data set {ds.root} has {len(recs)} image(s) with a drop mask; the finder "
                        "needs masks (labels.csv column `mask`) for at least 2 images. Without "
                        "masks: `train classifier DATA --crop none` (whole images) or "
                        "`--finder BUNDLE` (another bundle's finder); see docs/usage.md")
    return recs


def resolve_classes(ds: Dataset, requested: Sequence[str] | None,
                    existing: Sequence[str] | None) -> list[str]:
    """The class list a classifier trains on: --classes, else the bundle's, else (a new bundle)
    the default classes the data uses. A label outside the list, a mask folder read as a class,
    masks inside class folders: refused with `data check`'s own words, never a new class."""
    from .. import DEFAULT_CLASSES
    from ..datacheck import class_problems

    seen = ds.classes_seen
    if not seen:
        raise DataError(f"data set {ds.root} has no class labels (labels.csv column `label`)")
    if requested:
        classes = list(dict.fromkeys(requested))
    elif existing:
        classes = list(existing)
    else:
        classes = [c for c in DEFAULT_CLASSES if c in seen] or list(DEFAULT_CLASSES)
    problems = class_problems(ds, requested or existing or DEFAULT_CLASSES)
    if problems:
        more = f" ({len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        where = f"{problems[0].path}: " if problems[0].path else ""
        raise DataError(f"{where}{problems[0].message}{more}; see `edgecrystal data check "
                        f"{ds.root}`")
    return classes


def labelled_records(ds: Dataset) -> list[Record]:
    recs = ds.labelled()
    if len(recs) < 2:
        raise DataError(f"data set {ds.root} has {len(recs)} labelled image(s); need at least 2")
    skipped = ds.unlabelled()
    if skipped:  # as `data check` reports them
        log.info("%d unlabelled image(s) skipped (first: %s)", len(skipped), skipped[0].image)
    return recs


# ----------------------------------------------------------------------------------- splits
def split_random(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The finder's split: a seeded shuffle, `val_fraction` held out (at least one each side);
    `val_fraction` 0: every image trains and none validates."""
    if val_fraction <= 0:
        return np.arange(n), np.arange(0)
    if n < 2:
        raise DataError(f"{n} image(s) cannot be split into training and validation")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# Class indices, as a list or an integer array.
Labels = Sequence[int] | np.ndarray


def label_indices(samples: Sequence[Sample], classes: Sequence[str]) -> np.ndarray:
    """Each sample's class index in `classes` (samples come from labelled records)."""
    missing = [str(s.path) for s in samples if s.label is None]
    if missing:
        raise DataError(f"{missing[0]} has no label (and {len(missing) - 1} more)")
    return np.array([list(classes).index(str(s.label)) for s in samples], dtype=np.int64)


def split_stratified(labels: Labels, val_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's split: per class a seeded shuffle with `val_fraction` held out, so both
    sides keep the class mix (a class with one image goes to training); `val_fraction` 0:
    every image trains and none validates."""
    y = np.asarray(labels)
    if val_fraction <= 0:
        return np.arange(y.size, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for k in np.unique(y):
        idx = rng.permutation(np.nonzero(y == k)[0])
        n_val = round(idx.size * val_fraction) if idx.size > 1 else 0
        n_val = min(idx.size - 1, max(1 if idx.size > 1 else 0, n_val))
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    if not val:
        raise DataError("too few labelled images to hold any out for validation")
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def subsample_stratified(idx: np.ndarray, labels: Labels, n: int, seed: int) -> np.ndarray:
    """`n` of `idx`, keeping the class mix (largest-remainder allocation per class)."""
    if n >= idx.size:
        return idx
    y = np.asarray(labels)[idx]
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = counts * n / idx.size
    take = np.floor(quota).astype(int)
    for j in np.argsort(-(quota - take))[: n - take.sum()]:
        take[j] += 1
    chosen = [rng.permutation(idx[y == k])[:t] for k, t in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(chosen))


# ----------------------------------------------------------------------------------- arrays
def finder_arrays(samples: Sequence[Sample], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Finder inputs (N x size x size x 3 uint8) and 0/1 targets (N x size x size x 1 float32)."""
    x = np.stack([preprocess.finder_input(s.picture, size) for s in samples])
    y = []
    for s in samples:
        if s.mask is None:
            raise DataError(f"{s.path} has no drop mask")
        m = preprocess.resize(s.mask.astype(np.uint8)[..., None].repeat(3, axis=2) * 255, size)
        y.append((m[..., 0] >= 128).astype(np.float32)[..., None])
    return x, np.stack(y)


# A finder's batch call: a Keras model's predict_on_batch, or a runtime Runner's predict.
FinderCall = Callable[[np.ndarray], Any]


def finder_probabilities(predict: FinderCall, samples: Sequence[Sample], size: int,
                         batch_size: int = 8) -> list[np.ndarray]:
    """The finder's output at its own resolution (size x size x 1): what the crop step takes."""
    out: list[np.ndarray] = []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        x = np.stack([preprocess.finder_input(s.picture, size) for s in chunk])
        out.extend(np.asarray(predict(x)))
    return out


def predict_masks(predict: FinderCall, samples: Sequence[Sample], size: int,
                  batch_size: int = 8) -> list[np.ndarray]:
    """Finder probabilities mapped back to each image's size (what Dice is measured on)."""
    return [preprocess.mask_to_image(p, s.picture.height, s.picture.width)
            for p, s in zip(finder_probabilities(predict, samples, size, batch_size), samples,
                            strict=True)]


def classifier_arrays(samples: Sequence[Sample], crop: str, size: int,
                      finder_masks: Sequence[np.ndarray] | None = None,
                      threshold: float = preprocess.DEFAULT_THRESHOLD,
                      finder_size: int = 0) -> np.ndarray:
    """Classifier inputs (N x size x size x 3 uint8) for a crop mode: finder = the finder's
    masks (at its resolution, `finder_probabilities`), manual = the ground-truth masks, none =
    the whole image. `finder_size`: the input size of the finder that will crop for this
    classifier when it scores (finder and manual modes; see preprocess.crop_drop)."""
    if crop not in preprocess.CROP_MODES:
        raise UsageError(f"unknown crop mode {crop!r} (choose {', '.join(preprocess.CROP_MODES)})")
    out = []
    for i, s in enumerate(samples):
        if crop == "none":
            c = preprocess.full_image(s.picture, size)
        elif crop == "manual":
            if s.mask is None:
                raise DataError(f"{s.path} has no drop mask (--crop manual needs one per image)")
            c = preprocess.crop_drop(s.picture, s.mask.astype(np.float32), size, threshold=0.5,
                                     finder_size=finder_size)
        else:
            assert finder_masks is not None
            c = preprocess.crop_drop(s.picture, finder_masks[i], size, threshold=threshold,
                                     finder_size=finder_size)
        out.append(c.pixels)
    return np.stack(out)


def onehot(labels: Labels, num_classes: int) -> np.ndarray:
    return np.eye(num_classes, dtype=np.float32)[np.asarray(labels, dtype=int)]


# ----------------------------------------------------------------------------------- batches
def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                 augment: Callable[..., Any] | None, kind: str,
                 extra: tuple[np.ndarray, np.ndarray, int] | None = None) -> Any:
    """An augmented, shuffled keras.utils.PyDataset over in-memory arrays. Batch b of epoch e
    is drawn from a generator seeded by (seed, e, b): a resumed run sees the same stream.

    `extra` = (x2, y2, k): every batch holds k samples drawn at random from x2/y2 and
    batch_size - k from x/y; an epoch is one pass over x."""
    from ..models import _keras

    keras = _keras()
    extra_count = extra[2] if extra is not None else 0
    if not 0 <= extra_count < batch_size:
        raise UsageError(f"{extra_count} extra samples do not fit a batch of {batch_size}")
    own_count = batch_size - extra_count

    dataset_base: Any = keras.utils.PyDataset  # Keras has no type information

    class Batches(dataset_base):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = 0

        def __len__(self) -> int:
            return int(np.ceil(len(x) / own_count))

        def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
            order = np.random.default_rng([seed, self.epoch]).permutation(len(x))
            idx = order[b * own_count:(b + 1) * own_count]
            rng = np.random.default_rng([seed, self.epoch, b])
            images, targets = x[idx], y[idx]
            if extra is not None and extra_count:
                pick = rng.choice(len(extra[0]), size=extra_count, replace=False)
                images = np.concatenate([images, extra[0][pick]])
                targets = np.concatenate([targets, extra[1][pick]])
            if augment is None:
                return images, targets
            if kind == "finder":
                pairs = [augment(img, msk, rng) for img, msk in zip(images, targets, strict=True)]
                return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
            return np.stack([augment(img, rng) for img in images]), targets

    return Batches()

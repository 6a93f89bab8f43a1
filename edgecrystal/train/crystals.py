"""Training the crystal model (models.build_crystals) and writing it into a bundle's `crystals`
section: per-pixel crystal probability on the drop crop the classifier sees.

Ground truth per image (labels.csv): the `crystals` column names a mask PNG (255 on crystal
pixels, what `edgecrystal synth` writes for every image; an empty mask is "no crystal"), or a
`crystals.csv` at DATA's root lists boxes (`path,x0,y0,x1,y1[,kind,certainty]`, the
real-sample layout: each box becomes the ellipse inscribed in it, a crystal's rough shape;
`kind` none means no crystal, `certainty` doubtful rows are left out). The crop is the scoring
crop (preprocess.crop_drop) from the image's drop mask, or from the bundle's finder when the
image has none; the crystal mask is cut, padded and resized with the crop's geometry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics, models, preprocess
from ..bundle import Bundle, removed_on_failure
from ..crystal_boxes import from_probability
from ..crystal_boxes import iou as box_iou
from ..crystal_truth import read_truth
from ..dataset import Dataset, Record, load_dataset
from ..errors import DataError, UsageError
from ..imageio import load_picture, read_image
from . import augment, data, loop, profiles
from .profiles import CrystalsHP

ARCH_KEYS = ("input_size", "base_filters", "depth", "stem_stride", "seed", "val_fraction")
BOXES_FILE = "crystals.csv"
MASK_COLUMN = "crystals"


@dataclass
class CrystalSample:
    """One training crop: the crop's pixels (N x N x 3 uint8) and its crystal target (N x N
    float32 0/1), with the image it came from."""

    path: Path
    pixels: np.ndarray
    target: np.ndarray


# ------------------------------------------------------------------------------ ground truth
Truth = Path | list[tuple[int, int, int, int]]  # a crystal mask file, or boxes


def crystal_truth(ds: Dataset) -> dict[Path, Truth]:
    """Per image with crystal ground truth: its crystal mask file (read when its crop is made:
    thousands of full-size masks do not sit in memory at once) or its boxes."""
    boxes = _boxes_file(ds.root)
    out: dict[Path, Truth] = {}
    for rec in ds.records:
        name = rec.meta.get(MASK_COLUMN, "").strip()
        if name:
            path = ds.root / name
            if not path.is_file():
                raise DataError(f"crystal mask {path} (labels.csv column {MASK_COLUMN}) "
                                "does not exist")
            out[rec.image] = path
        elif rec.image.resolve() in boxes:
            out[rec.image] = boxes[rec.image.resolve()]
    return out


def _boxes_file(root: Path) -> dict[Path, list[tuple[int, int, int, int]]]:
    """DATA's crystals.csv (crystal_truth's reader, the one evaluate uses): the sure boxes per
    image; an image marked `none` trains as a negative (no box); doubtful boxes are left out."""
    path = root / BOXES_FILE
    if not path.is_file():
        return {}
    return {image.path.resolve(): [b.box for b in image.split("sure")[0]]
            for image in read_truth(path, root)}


def boxes_to_mask(boxes: Sequence[tuple[int, int, int, int]], height: int,
                  width: int) -> np.ndarray:
    """Boxes as a crystal mask: the filled ellipse inscribed in each box."""
    import cv2

    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes:
        # Pixel centres x0 .. x1 - 1: an ellipse through the outer ones.
        centre = ((x0 + x1 - 1) / 2.0, (y0 + y1 - 1) / 2.0)
        cv2.ellipse(mask, (centre, (max(1.0, x1 - x0 - 1.0), max(1.0, y1 - y0 - 1.0)), 0.0),
                    255, -1)
    return mask > 0


# ------------------------------------------------------------------------------------ crops
def crop_target(crystals: np.ndarray, box: tuple[int, int, int, int], size: int,
                cover: float) -> np.ndarray:
    """The crystal mask (original pixels) under a crop: cut at `box`, padded to a square as
    preprocess.crop_drop pads the pixels (centred), shrunk by area to size x size, and a pixel
    that is at least `cover` crystal is a crystal pixel."""
    import cv2

    x0, y0, x1, y1 = box
    patch = crystals[y0:y1, x0:x1].astype(np.float32)
    h, w = patch.shape
    side = max(h, w)
    canvas = np.zeros((side, side), np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top:top + h, left:left + w] = patch
    shrink = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    small = cv2.resize(canvas, (size, size), interpolation=shrink)
    return (small >= cover).astype(np.float32)


def make_samples(records: Sequence[Record], truth: dict[Path, Truth], hp: CrystalsHP,
                 finder_size: int, finder: Any = None) -> list[CrystalSample]:
    """The scoring crop of every record and its crystal target. `finder`: a Keras finder with
    input size `finder_size` for images without a drop mask."""
    out = []
    for rec in records:
        picture = load_picture(rec.image)
        if rec.mask is not None:
            region = data.read_mask(rec.mask, (picture.height, picture.width)).astype(np.float32)
            threshold = 0.5
        elif finder is not None:
            x = preprocess.finder_input(picture, finder_size)[None]
            region = np.asarray(finder.predict_on_batch(x))[0]
            threshold = preprocess.DEFAULT_THRESHOLD
        else:
            raise DataError(f"{rec.image} has no drop mask and the bundle has no finder to "
                            "crop it (train a finder first, or list masks in labels.csv)")
        crop = preprocess.crop_drop(picture, region, hp.input_size, threshold=threshold,
                                    finder_size=finder_size)
        found = truth[rec.image]
        mask = (read_image(found).max(axis=2) > 0 if isinstance(found, Path)
                else boxes_to_mask(found, picture.height, picture.width))
        if mask.shape != (picture.height, picture.width):
            raise DataError(f"crystal mask of {rec.image} is {mask.shape[1]}x{mask.shape[0]}, "
                            f"the image is {picture.width}x{picture.height}")
        out.append(CrystalSample(rec.image, crop.pixels,
                                 crop_target(mask, crop.box, hp.input_size, hp.cover)))
    return out


# ---------------------------------------------------------------------- boxes (training only)
def map_boxes(prob: np.ndarray, threshold: float,
              min_area: int) -> list[tuple[int, int, int, int]]:
    """The boxes of a square crop's map at its own resolution (x0, y0, x1, y1; x1/y1
    exclusive), most certain first: the runtime's box step (crystal_boxes.from_probability)
    with the crop as the whole frame, so training measures the boxes scoring will write."""
    side = prob.shape[0]
    return [c.box for c in from_probability(prob, (0, 0, side, side), threshold=threshold,
                                            min_area=min_area)]


def box_scores(probs: Sequence[np.ndarray], targets: Sequence[np.ndarray], threshold: float,
               min_area: int, iou: float = 0.5) -> dict[str, Any]:
    """Box recall and precision at `iou` on crops (greedy one-to-one matching by IoU), pixel
    IoU of the crystal class, and how many crystal-free crops got a box."""
    true_pos = n_true = n_pred = empty_with_box = empty = 0
    inter = union = 0.0
    for prob, target in zip(probs, targets, strict=True):
        pred = map_boxes(prob, threshold, min_area)
        truth = map_boxes(target, 0.5, 1)
        n_true, n_pred = n_true + len(truth), n_pred + len(pred)
        if not truth:
            empty += 1
            empty_with_box += bool(pred)
        pairs = sorted(((box_iou(t, p), i, j) for i, t in enumerate(truth)
                        for j, p in enumerate(pred)), reverse=True)
        used_t: set[int] = set()
        used_p: set[int] = set()
        for value, i, j in pairs:
            if value < iou:
                break
            if i not in used_t and j not in used_p:
                used_t.add(i)
                used_p.add(j)
        true_pos += len(used_t)
        on = np.asarray(prob).reshape(target.shape[:2]) >= threshold
        gt = np.asarray(target).reshape(target.shape[:2]) >= 0.5
        inter += float((on & gt).sum())
        union += float((on | gt).sum())
    return {"iou_threshold": iou, "recall": true_pos / n_true if n_true else math.nan,
            "precision": true_pos / n_pred if n_pred else math.nan, "true_boxes": n_true,
            "predicted_boxes": n_pred, "pixel_iou": inter / union if union else math.nan,
            "crystal_free_crops": empty, "crystal_free_with_a_box": empty_with_box,
            "crops": len(targets)}


# --------------------------------------------------------------------------------- training
def crystal_loss(dice_weight: float) -> Any:
    """Binary cross-entropy plus `dice_weight` x (1 - soft Dice over the batch)."""
    keras = models._keras()
    ops = keras.ops

    @keras.saving.register_keras_serializable(package="edgecrystal", name="crystal_loss")
    def loss(y_true: Any, y_pred: Any) -> Any:
        bce = ops.mean(keras.losses.binary_crossentropy(y_true, y_pred))
        overlap = ops.sum(y_true * y_pred)
        dice = (2.0 * overlap + 1.0) / (ops.sum(y_true) + ops.sum(y_pred) + 1.0)
        return bce + dice_weight * (1.0 - dice)

    return loss


def build(hp: CrystalsHP, init: Path | None = None) -> Any:
    model = models.build_crystals(hp.input_size, hp.base_filters, hp.depth, hp.stem_stride)
    if init is not None:
        model.set_weights(models.load_model(init).get_weights())
    return loop.set_bn_momentum(model, hp.bn_momentum)


def compile_crystals(model: Any, hp: CrystalsHP, steps_per_epoch: int) -> None:
    keras = models._keras()
    rate: Any = hp.lr
    if hp.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            hp.lr, decay_steps=max(1, hp.epochs * steps_per_epoch))
    elif hp.lr_schedule != "constant":
        raise UsageError(f"unknown lr_schedule {hp.lr_schedule!r} (choose constant or cosine)")
    model.compile(optimizer=loop.optimizer(hp.optimizer, rate), loss=crystal_loss(hp.dice_weight),
                  metrics=[keras.metrics.BinaryIoU(target_class_ids=(1,), threshold=hp.threshold,
                                                   name="crystal_iou")])


def _augment(hp: CrystalsHP) -> Any:
    # The finder's joint image/mask augmentation: its fields are read by name.
    def one(img: np.ndarray, target: np.ndarray, rng: np.random.Generator) -> Any:
        return augment.augment_finder(img, target, rng, hp)  # type: ignore[arg-type]

    return one


def fit_crystals(train: Sequence[CrystalSample], val: Sequence[CrystalSample], hp: CrystalsHP,
                 workdir: Path, *, resume: bool = False, verbose: int = 0,
                 log_dir: Path | None = None, init: Path | None = None) -> loop.FitResult:
    models._keras().utils.set_random_seed(hp.seed)
    x = np.stack([s.pixels for s in train])
    y = np.stack([s.target[..., None] for s in train])
    batches = data.make_batches(x, y, hp.batch_size, hp.seed, _augment(hp), "finder")
    validation = ((np.stack([s.pixels for s in val]),
                   np.stack([s.target[..., None] for s in val])) if val else None)
    result = loop.fit(
        build=lambda: build(hp, init),
        compile_model=lambda m: compile_crystals(m, hp, len(batches)),
        train_data=batches, val_data=validation, hp=hp, hp_dict=profiles.as_dict(hp),
        arch_keys=ARCH_KEYS, ckpt_dir=workdir, log_dir=log_dir,
        monitor="val_crystal_iou" if val else "crystal_iou", mode="max", resume=resume,
        verbose=verbose, restore_best=bool(val))
    if not val:
        result.best_epoch, result.best_value = result.epochs, math.nan
    return result


def predict(model: Any, samples: Sequence[CrystalSample], batch_size: int = 32) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(samples), batch_size):
        x = np.stack([s.pixels for s in samples[start:start + batch_size]])
        out.extend(np.asarray(model.predict_on_batch(x)))
    return out


def init_source(init: str | None) -> Path | None:
    """`--init`: "default" (the shipped crystal model), a bundle folder, or None."""
    if init is None:
        return None
    from ..pretrained import bundle_path

    return bundle_path("crystals") if init == "default" else Path(init)


def init_overrides(init_bundle: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The init model fixes input size, width and depth (its weights fit no other)."""
    section = Bundle.open(init_bundle).require("crystals")
    fixed = {k: int(section[k]) for k in ("input_size", "base_filters", "depth", "stem_stride")}
    return profiles.pin_init("crystal model", init_bundle, fixed, overrides)


def train_crystals(data_dir: str | Path, bundle: str | Path, profile: str | None = None,
                   overrides: dict[str, Any] | None = None, resume: bool = False,
                   verbose: int = 0, init: str | None = None) -> dict[str, Any]:
    """Train the crystal model on DATA's crystal ground truth into `bundle`/crystals.keras and
    its `crystals` section. `init`: "default" or a bundle folder to fine-tune (profile
    finetune unless `profile` is given; else sim2real)."""
    init_bundle = init_source(init)
    profile = profile or ("finetune" if init_bundle is not None else "sim2real")
    if init_bundle is not None:
        overrides = init_overrides(init_bundle, overrides)
    hp = profiles.resolve("crystals", profile, overrides)
    step = hp.stem_stride * 2 ** (hp.depth - 1)
    if hp.input_size % step:
        raise UsageError(f"--input-size {hp.input_size} must be divisible by {step}")
    ds = load_dataset(data_dir)
    truth = crystal_truth(ds)
    records = [r for r in ds.records if r.image in truth]
    if len(records) < 2:
        raise DataError(f"data set {ds.root} has {len(records)} image(s) with crystal ground "
                        f"truth; need at least 2 (labels.csv column `{MASK_COLUMN}` naming a "
                        f"mask PNG, as `edgecrystal synth` writes, or {BOXES_FILE} with boxes)")
    with removed_on_failure(bundle):
        b = Bundle.open(bundle, create=True)
        return _train_into(b, ds, records, truth, profile, hp, resume, verbose, init_bundle)


def _finder_for(b: Bundle, records: Sequence[Record]) -> tuple[int, Any]:
    """The finder input size the crop is cut for (the bundle's finder, else the shipped one's)
    and, when some image has no drop mask, that finder's Keras model."""
    source = b if b.has("finder") else Bundle.open(_default_bundle())
    size = int(source.require("finder")["input_size"])
    if all(r.mask is not None for r in records):
        return size, None
    return size, models.load_model(source.model_file("finder"))


def _default_bundle() -> Path:
    from ..pretrained import bundle_path

    return bundle_path("finder")


def _train_into(b: Bundle, ds: Dataset, records: Sequence[Record],
                truth: dict[Path, Truth], profile: str, hp: CrystalsHP, resume: bool,
                verbose: int, init_bundle: Path | None) -> dict[str, Any]:
    started = time.time()
    finder_size, finder = _finder_for(b, records)
    samples = make_samples(records, truth, hp, finder_size, finder)
    tr, va = data.split_random(len(samples), hp.val_fraction, hp.seed)
    train, val = [samples[i] for i in tr], [samples[i] for i in va]
    init_file = Bundle.open(init_bundle).model_file("crystals") if init_bundle else None
    result = fit_crystals(train, val, hp, b.path("checkpoints/crystals"), resume=resume,
                          verbose=verbose, log_dir=b.path("logs/crystals"), init=init_file)
    scored, split_name = (val, "validation") if val else (train, "training")
    probs = predict(result.model, scored)
    targets = [s.target for s in scored]
    scores = {"split": split_name,
              "iou_0.5": box_scores(probs, targets, hp.threshold, hp.min_area, 0.5),
              "iou_0.3": box_scores(probs, targets, hp.threshold, hp.min_area, 0.3)}
    loop.save_clean(result.model, lambda: build(hp), b.path("crystals.keras"))
    b.register_file("crystals.keras")
    last = result.history[-1] if result.history else {}
    positives = sum(bool(s.target.any()) for s in samples)
    section = b.set_section("crystals", metrics.json_safe({
        "model": "crystals.keras",
        "input_size": hp.input_size,
        "threshold": hp.threshold,
        "min_area": hp.min_area,
        "base_filters": hp.base_filters,
        "depth": hp.depth,
        "stem_stride": hp.stem_stride,
        "crop": "finder",
        "finder_size": finder_size,
        "profile": profile,
        "init": str(init_bundle) if init_bundle else None,
        "flops": models.count_flops(result.model),
        "hyperparameters": profiles.as_dict(hp),
        "data": {"root": str(ds.root), "images": len(samples), "with_crystals": positives,
                 "split": {"train": len(train), "val": len(val)}},
        "training": {"epochs_completed": result.epochs, "initial_epoch": result.initial_epoch,
                     "best_epoch": result.best_epoch, "monitor": result.monitor,
                     "best_value": result.best_value, "last_epoch": last,
                     "seconds_this_run": round(time.time() - started, 1)},
        "metrics": scores,
    }))
    b.save()
    return {"bundle": str(b.root), "model": str(b.path("crystals.keras")),
            "hyperparameters": profiles.as_dict(hp), "metrics": section["metrics"],
            "training": section["training"], "split": {"train": len(train), "val": len(val)}}

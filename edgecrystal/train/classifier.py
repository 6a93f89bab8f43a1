"""Training the Inception-V3 classifier on drop crops (finder, manual masks, or the whole image)
and writing it into a bundle."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import DEFAULT_CLASSES, metrics, models, preprocess
from ..bundle import BUNDLE_FILE, Bundle, removed_on_failure
from ..collapse import MIN_IMAGES, useless_scores
from ..dataset import load_dataset
from ..errors import BundleError, UsageError
from ..pretrained import adopt_finder
from . import augment, data, loop, profiles
from .finder import blend_with_init, learning_rate
from .profiles import ClassifierHP

ARCH_KEYS = ("input_size", "seed", "val_fraction", "backbone")
log = logging.getLogger(__name__)


def build(hp: ClassifierHP, num_classes: int, imagenet_weights: str | Path | None = None,
          init: Path | None = None) -> Any:
    """A fresh classifier for `hp`; with `init` (a classifier .keras file of the same
    architecture and classes) it starts from that model's weights (fine-tuning)."""
    model = models.build_classifier(num_classes, hp.input_size, imagenet_weights, hp.dropout,
                                    hp.backbone)
    if init is not None:
        model.set_weights(models.load_model(init).get_weights())
    if not hp.train_backbone:
        # The nested keras.applications model: frozen, it also runs its BatchNorm layers in
        # inference mode, so the init's statistics are kept.
        for layer in model.layers:
            if hasattr(layer, "layers"):
                layer.trainable = False
    return loop.set_bn_momentum(model, hp.bn_momentum)


def init_source(init: str | None) -> Bundle | None:
    """`--init`: "default" (the shipped classifier's bundle), a bundle folder with a trained
    Keras classifier, or None."""
    if init is None:
        return None
    from ..pretrained import shipped_classifier

    source = Bundle.open(shipped_classifier() if init == "default" else Path(init))
    source.model_file("classifier")  # one line when it has none (or only an imported ONNX)
    return source


def init_overrides(source: Bundle, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The init model fixes the backbone (another cannot take its weights). Its input size is
    the default, and another may be asked for: both backbones end in global average pooling,
    so no weight's shape depends on the input size (a classifier trained at 128 px can go on
    learning at 192 px, where a small crystal keeps more pixels)."""
    section = source.require("classifier")
    out = profiles.pin_init("classifier", source.root,
                            {"backbone": str(section.get("backbone", "inception_v3"))}, overrides)
    if out.get("input_size") is None:
        out["input_size"] = int(section["input_size"])
    return out


def compile_classifier(model: Any, hp: ClassifierHP, steps_per_epoch: int = 1) -> None:
    keras = models._keras()
    model.compile(optimizer=loop.optimizer(hp.optimizer, learning_rate(hp, steps_per_epoch)),
                  loss=hp.loss, metrics=["accuracy", keras.metrics.AUC(name="auc")])


def fit_classifier(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                   num_classes: int, hp: ClassifierHP, workdir: Path, *,
                   imagenet_weights: str | Path | None = None, resume: bool = False,
                   verbose: int = 0, log_dir: Path | None = None,
                   restore_best: bool = True, init: Path | None = None,
                   synthetic: tuple[np.ndarray, np.ndarray] | None = None) -> loop.FitResult:
    """Train on in-memory crops (uint8) and integer labels; checkpoints go to `workdir`.
    `init`: a classifier .keras file to start from (fine-tuning). `synthetic`: crops and labels
    that fill hp.synthetic_fraction of every batch. With no validation crops (`xv` empty)
    nothing chooses the epoch: the last one is kept."""
    models._keras().utils.set_random_seed(hp.seed)
    batches = data.make_batches(x, data.onehot(y, num_classes), hp.batch_size, hp.seed,
                                lambda img, rng: augment.augment_classifier(img, rng, hp),
                                "classifier", extra=_synthetic_share(hp, synthetic, num_classes))
    validate = len(yv) > 0
    result = loop.fit(
        build=lambda: build(hp, num_classes, imagenet_weights, init),
        compile_model=lambda m: compile_classifier(m, hp, len(batches)), train_data=batches,
        val_data=(xv, data.onehot(yv, num_classes)) if validate else None, hp=hp,
        hp_dict=profiles.as_dict(hp), arch_keys=ARCH_KEYS, ckpt_dir=workdir, log_dir=log_dir,
        monitor="val_auc" if validate else "auc", mode="max", resume=resume, verbose=verbose,
        restore_best=restore_best and validate)
    if not validate:  # the last epoch is kept, whatever the training AUC did
        result.best_epoch, result.best_value = result.epochs, math.nan
    if init is not None and hp.init_blend:
        blend_with_init(result.model, models.load_model(init), hp.init_blend)
    return result


def _synthetic_share(hp: ClassifierHP, synthetic: tuple[np.ndarray, np.ndarray] | None,
                     num_classes: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The synthetic crops mixed into every batch (hp.synthetic_fraction of it, rounded, but
    one of DATA's images per batch at least: 7/8 of a batch of 4 is 3), or None."""
    count = _synthetic_count(hp)
    if count <= 0 or synthetic is None:
        return None
    xs, ys = synthetic
    if count >= hp.batch_size or len(ys) < count:
        raise UsageError(f"synthetic_fraction {hp.synthetic_fraction} of a batch of "
                         f"{hp.batch_size} from {len(ys)} synthetic wells leaves no room for "
                         "DATA's images (keep it below 1, and wells >= batch share)")
    return xs, data.onehot(ys, num_classes), count


def _synthetic_count(hp: ClassifierHP) -> int:
    count = round(hp.batch_size * hp.synthetic_fraction)
    return min(count, hp.batch_size - 1) if hp.synthetic_fraction < 1 else count


def synthetic_crops(b: Bundle, hp: ClassifierHP, class_list: Sequence[str], crop: str,
                    finder: tuple[Any, int, float] | None) -> tuple[np.ndarray, np.ndarray] | None:
    """hp.synthetic_wells labelled wells of every style (synthetic_mix.classifier_samples,
    seeded by hp.seed), cropped as DATA's images are; None when the profile mixes none."""
    if _synthetic_count(hp) <= 0:
        return None
    if hp.synthetic_wells < 1:
        raise UsageError(f"synthetic_wells must be at least 1 (got {hp.synthetic_wells})")
    strangers = [c for c in DEFAULT_CLASSES if c not in class_list]
    if strangers:
        raise UsageError(f"synthetic_fraction {hp.synthetic_fraction} mixes in wells of the "
                         f"classes {', '.join(DEFAULT_CLASSES)}, and {', '.join(strangers)} "
                         f"is not among this classifier's ({', '.join(class_list)}): set "
                         "synthetic_fraction=0")
    from .synthetic_mix import classifier_samples

    wells = classifier_samples(hp.synthetic_wells, hp.seed)
    return (crops_for(b, wells, crop, hp.input_size, finder),
            data.label_indices(wells, class_list))


def score(model: Any, x: np.ndarray, y: np.ndarray, classes: Sequence[str],
          batch_size: int = 16) -> dict[str, Any]:
    """The paper's classifier figures: ROC AUC per class and macro, accuracy, confusion."""
    probs = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    pred = probs.argmax(axis=1)
    return {"roc_auc": metrics.roc_auc_ovr(y, probs, classes),
            "accuracy": metrics.accuracy(y, pred),
            "confusion_matrix": metrics.confusion_matrix(y, pred, len(classes)).tolist(),
            "images": len(y), "probs": probs}


def load_finder(b: Bundle) -> tuple[Any, int, float]:
    """The bundle's trained finder, its input size and threshold (BundleError when absent)."""
    section = b.require("finder")
    return (models.load_model(b.model_file("finder")), int(section["input_size"]),
            float(section.get("threshold", preprocess.DEFAULT_THRESHOLD)))


def crops_for(b: Bundle | None, samples: Sequence[data.Sample], crop: str, size: int,
              finder: tuple[Any, int, float] | None = None) -> np.ndarray:
    """Classifier inputs for `samples` in crop mode `crop` (finder from the bundle if needed)."""
    if crop == "finder":
        if finder is None:
            assert b is not None
            finder = load_finder(b)
        model, fsize, threshold = finder
        masks = data.finder_probabilities(model.predict_on_batch, samples, fsize)
        return data.classifier_arrays(samples, crop, size, masks, threshold, finder_size=fsize)
    # Manual crops: the finder stands in for the drawn masks when the bundle scores.
    fsize = b.input_size("finder") if crop == "manual" and b is not None and b.has("finder") \
        else 0
    return data.classifier_arrays(samples, crop, size, finder_size=fsize)


def train_classifier(
    data_dir: str | Path,
    bundle: str | Path,
    crop: str = "manual",
    profile: str | None = "tiny",
    overrides: dict[str, Any] | None = None,
    imagenet_weights: str | Path | None = None,
    resume: bool = False,
    verbose: int = 0,
    classes: Sequence[str] | None = None,
    finder_from: str | Path | None = None,
    init: str | None = None,
) -> dict[str, Any]:
    """Train the classifier on DATA's labelled images (stratified split by the profile's
    val_fraction: 3:2 for most, none for `finetune`) into `bundle`/classifier.keras, feeding it
    crops made the way the runtime will make them.
    `finder_from`: another bundle whose finder this bundle adopts (data without masks).
    `init`: "default" fine-tunes the shipped classifier, a bundle folder that bundle's; the
    architecture and classes are then the init's, and so is the finder when the bundle has
    none of its own (profile `finetune` unless another is given)."""
    if crop not in preprocess.CROP_MODES:
        raise UsageError(f"unknown crop mode {crop!r} (choose {', '.join(preprocess.CROP_MODES)})")
    source = init_source(init)
    if source is not None:
        overrides = init_overrides(source, overrides)
        classes = classes or source.classes
        if finder_from is None and crop == "finder" and source.has("finder"):
            finder_from = source.root
    profile = profile or ("finetune" if source is not None else "lite")
    hp = profiles.resolve("classifier", profile, overrides)
    if imagenet_weights is not None:
        # A missing file, or no network for "imagenet": one line now, before any data loads.
        imagenet_weights = models.resolve_imagenet_weights(imagenet_weights, hp.backbone)
    # Everything that can be refused is checked before the bundle folder is created.
    existing = Bundle.open(bundle) if (Path(bundle) / BUNDLE_FILE).is_file() else None
    ds = load_dataset(data_dir)
    records = data.labelled_records(ds)
    class_list = data.resolve_classes(ds, classes, existing.classes if existing else None)
    donor = Bundle.open(finder_from) if finder_from is not None else None
    if donor is not None and not donor.has("finder"):
        raise BundleError(
            f"bundle {donor.root} has no finder to crop with: train one (`edgecrystal train "
            f"finder DATA --bundle {donor.root}`, needs drop masks), reuse another bundle's "
            "(`--finder OTHER_BUNDLE`), or classify whole images (`--crop none`)")
    use_shipped = crop == "finder" and donor is None and not (existing and existing.has("finder"))
    with removed_on_failure(bundle):
        b = Bundle.open(bundle, create=True)
        if donor is not None:
            adopt_finder(b, donor.root)
        elif use_shipped:
            # No finder of the user's own: the shipped one crops (edgecrystal models list).
            log.info("bundle %s has no finder: using the shipped one from %s", b.root,
                     adopt_finder(b))
        finder = load_finder(b) if crop == "finder" else None
        init_file = source.model_file("classifier") if source is not None else None
        if source is not None and class_list != source.classes:
            raise UsageError(f"--init {source.root} classifies {', '.join(source.classes)}; "
                             f"fine-tuning keeps those classes (asked: {', '.join(class_list)})")
        return _train_into(b, ds, records, class_list, crop, profile, hp, finder,
                           imagenet_weights, resume, verbose, init_file)


def _train_into(b: Bundle, ds: Any, records: Any, class_list: list[str], crop: str,
                profile: str, hp: ClassifierHP, finder: tuple[Any, int, float] | None,
                imagenet_weights: str | Path | None, resume: bool,
                verbose: int, init_file: Path | None = None) -> dict[str, Any]:
    started = time.time()
    samples = data.load_samples(records, masks=crop == "manual")
    labels = data.label_indices(samples, class_list)
    tr, va = data.split_stratified(labels, hp.val_fraction, hp.seed)
    x_all = crops_for(b, samples, crop, hp.input_size, finder)
    result = fit_classifier(x_all[tr], labels[tr], x_all[va], labels[va], len(class_list), hp,
                            b.path("checkpoints/classifier"), imagenet_weights=imagenet_weights,
                            resume=resume, verbose=verbose, log_dir=b.path("logs/classifier"),
                            init=init_file,
                            synthetic=synthetic_crops(b, hp, class_list, crop, finder))
    # Without a validation split the figures are on the training images, and say so.
    scored, split_name = (va, "validation") if len(va) else (tr, "training")
    scores = score(result.model, x_all[scored], labels[scored], class_list, hp.batch_size)
    warnings, useless = _training_warnings(result.model, x_all, len(va), scores["probs"],
                                           class_list, hp.batch_size)
    loop.save_clean(result.model, lambda: build(hp, len(class_list)), b.path("classifier.keras"))
    b.set_classes(class_list)
    b.register_file("classifier.keras")
    last = result.history[-1] if result.history else {}
    section = b.set_section("classifier", metrics.json_safe({
        "model": "classifier.keras",
        "input_size": hp.input_size,
        "crop": crop,
        "margin": preprocess.DEFAULT_MARGIN,
        "profile": profile,
        "backbone": hp.backbone,
        "imagenet_init": bool(imagenet_weights),
        "init": str(init_file.parent) if init_file else None,
        "flops": models.count_flops(result.model),
        "hyperparameters": profiles.as_dict(hp),
        "data": {"root": str(ds.root), "layout": ds.layout, "images": len(samples),
                 "classes": {c: int((labels == k).sum()) for k, c in enumerate(class_list)},
                 "split": {"train": len(tr), "val": len(va)}},
        "training": {"epochs_completed": result.epochs, "initial_epoch": result.initial_epoch,
                     "best_epoch": result.best_epoch, "monitor": result.monitor,
                     "best_value": result.best_value, "last_epoch": last,
                     "seconds_this_run": round(time.time() - started, 1)},
        "metrics": {"split": split_name,
                    **{k: v for k, v in scores.items() if k != "probs"}},
        # build-engines says it again; None when the scores vary (collapse.useless_scores).
        "useless": useless,
        "warnings": warnings,
    }))
    b.save()
    return {"bundle": str(b.root), "model": str(b.path("classifier.keras")), "classes": class_list,
            "hyperparameters": profiles.as_dict(hp), "metrics": section["metrics"],
            "training": section["training"], "warnings": warnings,
            "split": {"train": len(tr), "val": len(va)},
            # The validation images: what the confidence fit after training runs on.
            "held_out": [{"image": str(samples[k].path), "label": str(samples[k].label)}
                         for k in va]}


# A validation set smaller than this gives an AUC and an accuracy too coarse to trust (one
# image is 5 % of 20).
MIN_VALIDATION = 20


def _training_warnings(model: Any, x_all: np.ndarray, n_val: int, val_probs: np.ndarray,
                       classes: Sequence[str], batch_size: int) -> tuple[list[str], str | None]:
    """What `train` must say about a model that passed: a validation set too small to trust,
    scores that barely vary (judged on the validation images, or on up to 256 of all images
    when there are too few of those). Logged as warnings and returned for bundle.json."""
    warnings = []
    if n_val == 0:
        warnings.append("no validation split (val_fraction 0): the metrics are on the training "
                        "images, and no confidence is fitted; measure the model with `edgecrystal "
                        "evaluate HELDOUT --bundle B` and fit it with `edgecrystal bundle "
                        "fit-confidence B --data HELDOUT`")
    elif n_val < MIN_VALIDATION:
        warnings.append(f"the validation set is {n_val} image(s): too few for its AUC and "
                        f"accuracy to be trusted (want {MIN_VALIDATION}+; label more images)")
    probs = val_probs
    if n_val < MIN_IMAGES:
        probs = np.asarray(model.predict(x_all[:256], batch_size=batch_size, verbose=0))
    useless = useless_scores(probs, classes)
    if useless:
        warnings.append(useless)
    for warning in warnings:
        log.warning("warning: %s", warning)
    return warnings, useless

"""Training the U-Net drop finder (the paper's finder module) and writing it into a bundle."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import metrics, models
from ..bundle import Bundle, removed_on_failure
from ..dataset import Dataset, Record, load_dataset
from ..errors import UsageError
from . import augment, data, loop, profiles
from .profiles import ClassifierHP, FinderHP

if TYPE_CHECKING:  # Keras loads inside models._keras(), at the first model built
    import keras
    import numpy as np
    import tensorflow as tf

ARCH_KEYS = ("input_size", "base_filters", "depth", "seed", "val_fraction")


def build(hp: FinderHP, init: Path | None = None) -> keras.Model:
    """A fresh U-Net for `hp`; with `init` (a finder .keras file of the same architecture) it
    starts from that model's weights (fine-tuning)."""
    model = models.build_finder(hp.input_size, hp.base_filters, hp.depth)
    if init is not None:
        model.set_weights(models.load_model(init).get_weights())
    return loop.set_bn_momentum(model, hp.bn_momentum)


def init_source(init: str | None) -> Path | None:
    """`--init`: "default" (the shipped finder), a bundle folder with a finder, or None."""
    if init is None:
        return None
    from ..pretrained import bundle_path

    return bundle_path("finder") if init == "default" else Path(init)


def init_overrides(init_bundle: Path, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The init model fixes the architecture: its input size, width and depth, unless the
    caller asked for the same ones (anything else cannot take its weights)."""
    section = Bundle.open(init_bundle).require("finder")
    fixed = {"input_size": int(section["input_size"]),
             "base_filters": int(section["base_filters"]), "depth": int(section["depth"])}
    return profiles.pin_init("finder", init_bundle, fixed, overrides)


def learning_rate(hp: FinderHP | ClassifierHP,
                  steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """hp.lr, or with lr_schedule "cosine" a rate that falls from it to 0 at the last step
    (the classifier's fine-tuning uses it too)."""
    if hp.lr_schedule == "constant":
        return hp.lr
    if hp.lr_schedule == "cosine":
        keras = models._keras()
        return keras.optimizers.schedules.CosineDecay(
            hp.lr, decay_steps=max(1, hp.epochs * steps_per_epoch))
    raise UsageError(f"unknown lr_schedule {hp.lr_schedule!r} (choose constant or cosine)")


ENCODER_LAYER_PREFIXES = ("down", "bottom")  # models.build_finder's layer names


def finder_optimizer(hp: FinderHP, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """hp.optimizer at `learning_rate`, or with hp.encoder_lr_scale != 1 an Adam whose steps
    for the encoder's weights are that share of the decoder's."""
    if hp.encoder_lr_scale == 1.0:
        return loop.optimizer(hp.optimizer, learning_rate(hp, steps_per_epoch))
    if not 0.0 <= hp.encoder_lr_scale < 1.0 or hp.optimizer.lower() != "adam":
        raise UsageError(f"encoder_lr_scale {hp.encoder_lr_scale} needs optimizer adam and a "
                         "value from 0 to 1")
    return _encoder_scaled_adam()(learning_rate=learning_rate(hp, steps_per_epoch),
                                  encoder_lr_scale=hp.encoder_lr_scale)


def is_encoder_variable(path: str) -> bool:
    """Whether a finder weight (its Keras path, "down0_conv1/kernel") is in the encoder."""
    return path.split("/")[-2 if "/" in path else 0].startswith(ENCODER_LAYER_PREFIXES)


_SCALED_ADAM: list[type[keras.optimizers.Optimizer]] = []  # the class, made once Keras is loaded


def _encoder_scaled_adam() -> type[keras.optimizers.Optimizer]:
    if _SCALED_ADAM:
        return _SCALED_ADAM[0]
    keras = models._keras()

    adam_base: Any = keras.optimizers.Adam  # Keras has no type information

    # Registered so that a checkpoint with this optimizer loads again (--resume).
    @keras.saving.register_keras_serializable(package="edgecrystal")
    class EncoderScaledAdam(adam_base):
        """Adam whose rate is multiplied by `encoder_lr_scale` for the encoder's weights."""

        def __init__(self, encoder_lr_scale: float = 1.0, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.encoder_lr_scale = encoder_lr_scale

        def build(self, variables: list[tf.Variable]) -> None:
            super().build(variables)
            # update_step sees the backend's variable (no Keras path): look it up by index.
            self.encoder_indices = {index for index, variable in enumerate(variables)
                                    if is_encoder_variable(variable.path)}

        def update_step(self, gradient: tf.Tensor, variable: tf.Variable,
                        learning_rate: float | tf.Tensor) -> None:
            if self._get_variable_index(variable) in self.encoder_indices:
                learning_rate = learning_rate * self.encoder_lr_scale
            super().update_step(gradient, variable, learning_rate)

        def get_config(self) -> dict[str, object]:
            return {**super().get_config(), "encoder_lr_scale": self.encoder_lr_scale}

    _SCALED_ADAM.append(EncoderScaledAdam)
    return EncoderScaledAdam


def compile_finder(model: keras.Model, hp: FinderHP, steps_per_epoch: int = 1) -> None:
    keras = models._keras()
    model.compile(
        optimizer=finder_optimizer(hp, steps_per_epoch),
        loss=hp.loss,
        # The paper's metric: IoU of drop and of background, averaged.
        metrics=[keras.metrics.BinaryIoU(target_class_ids=(0, 1), threshold=hp.threshold,
                                         name="mean_iou")],
    )


def fit_finder(train: Sequence[data.Sample], val: Sequence[data.Sample], hp: FinderHP,
               workdir: Path, *, resume: bool = False, verbose: int = 0,
               log_dir: Path | None = None, restore_best: bool = True,
               init: Path | None = None) -> loop.FitResult:
    """Train on in-memory samples; checkpoints go to `workdir`. `init`: a finder .keras file
    to start from instead of random weights. With no `val` samples nothing chooses the epoch:
    the last one is kept."""
    models._keras().utils.set_random_seed(hp.seed)
    x, y = data.finder_arrays(train, hp.input_size)
    batches = data.make_batches(
        x, y, hp.batch_size, hp.seed,
        lambda img, msk, rng: augment.augment_finder(img, msk, rng, hp), "finder",
        extra=_synthetic_share(hp))
    validation = data.finder_arrays(val, hp.input_size) if val else None
    result = loop.fit(
        build=lambda: build(hp, init),
        compile_model=lambda m: compile_finder(m, hp, len(batches)),
        train_data=batches, val_data=validation, hp=hp, hp_dict=profiles.as_dict(hp),
        arch_keys=ARCH_KEYS, ckpt_dir=workdir, log_dir=log_dir,
        monitor="val_mean_iou" if val else "mean_iou", mode="max", resume=resume,
        verbose=verbose, restore_best=restore_best and bool(val))
    if not val:  # the last epoch is kept, whatever the training IoU did
        result.best_epoch, result.best_value = result.epochs, math.nan
    if init is not None and hp.init_blend:
        blend_with_init(result.model, models.load_model(init), hp.init_blend)
    return result


def blend_with_init(model: keras.Model, init_model: keras.Model, share: float) -> None:
    """Move every weight of `model` `share` of the way back to `init_model`'s."""
    if not 0.0 <= share <= 1.0:
        raise UsageError(f"init_blend {share} must be from 0 to 1")
    model.set_weights([share * start + (1.0 - share) * trained for start, trained in
                       zip(init_model.get_weights(), model.get_weights(), strict=True)])


def _synthetic_share(hp: FinderHP) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The synthetic wells mixed into every batch (hp.synthetic_fraction of it), or None."""
    count = round(hp.batch_size * hp.synthetic_fraction)
    if count <= 0:
        return None
    if count >= hp.batch_size or hp.synthetic_wells < count:
        raise UsageError(f"synthetic_fraction {hp.synthetic_fraction} of a batch of "
                         f"{hp.batch_size} from {hp.synthetic_wells} synthetic wells leaves no "
                         "room for DATA's images (keep it below 1, and wells >= batch share)")
    from .synthetic_mix import synthetic_samples

    xs, ys = data.finder_arrays(synthetic_samples(hp.synthetic_wells, hp.seed), hp.input_size)
    return xs, ys, count


def mask_scores(finder: keras.Model, samples: Sequence[data.Sample], hp_size: int,
                threshold: float, keep_masks: bool = False) -> dict[str, Any]:
    """The paper's Table 1 for the finder: Dice and IoU per image (finder output mapped back
    to the image's size, thresholded), their mean and standard deviation. `keep_masks` adds
    the thresholded masks ("masks") for pictures."""
    probs = data.predict_masks(finder.predict_on_batch, samples, hp_size)
    return metrics.mask_table(probs, [s.mask for s in samples], threshold, keep_masks)


def train_finder(
    data_dir: str | Path,
    bundle: str | Path,
    profile: str | None = "tiny",
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    verbose: int = 0,
    classes: Sequence[str] | None = None,
    init: str | None = None,
) -> dict[str, Any]:
    """Train the finder on DATA's masked images (7:3 split) into `bundle`/finder.keras.

    `init`: "default" fine-tunes the shipped finder (edgecrystal.pretrained), a bundle folder
    fine-tunes that bundle's finder; the architecture is then the init model's. `profile`
    None: "finetune" with `init`, else "lite"."""
    init_bundle = init_source(init)
    profile = profile or ("finetune" if init_bundle is not None else "lite")
    if init_bundle is not None:
        overrides = init_overrides(init_bundle, overrides)
    hp = profiles.resolve("finder", profile, overrides)
    ds = load_dataset(data_dir)
    records = data.mask_records(ds)
    with removed_on_failure(bundle):
        b = Bundle.open(bundle, create=True, classes=list(classes) if classes else None)
        if classes:
            b.set_classes(list(classes))
        elif not b.has("classifier") and ds.classes_seen:
            b.set_classes(data.resolve_classes(ds, None, None))
        return _train_into(b, ds, records, profile, hp, resume, verbose, init_bundle)


def _train_into(b: Bundle, ds: Dataset, records: list[Record], profile: str, hp: FinderHP,
                resume: bool, verbose: int, init_bundle: Path | None) -> dict[str, Any]:
    started = time.time()
    samples = data.load_samples(records, masks=True)
    tr, va = data.split_random(len(samples), hp.val_fraction, hp.seed)
    train, val = [samples[i] for i in tr], [samples[i] for i in va]
    init_file = Bundle.open(init_bundle).model_file("finder") if init_bundle else None
    result = fit_finder(train, val, hp, b.path("checkpoints/finder"), resume=resume,
                        verbose=verbose, log_dir=b.path("logs/finder"), init=init_file)
    # Without a validation split the score is on the training images, and says so.
    scored, split_name = (val, "validation") if val else (train, "training")
    scores = mask_scores(result.model, scored, hp.input_size, hp.threshold)
    loop.save_clean(result.model, lambda: build(hp), b.path("finder.keras"))
    b.register_file("finder.keras")
    last = result.history[-1] if result.history else {}
    section = b.set_section("finder", metrics.json_safe({
        "model": "finder.keras",
        "input_size": hp.input_size,
        "base_filters": hp.base_filters,
        "depth": hp.depth,
        "profile": profile,
        "init": str(init_bundle) if init_bundle else None,
        "threshold": hp.threshold,
        "flops": models.count_flops(result.model),
        "hyperparameters": profiles.as_dict(hp),
        "data": {**_data_summary(ds, len(train), len(val))},
        "training": {"epochs_completed": result.epochs, "initial_epoch": result.initial_epoch,
                     "best_epoch": result.best_epoch, "monitor": result.monitor,
                     "best_value": result.best_value, "last_epoch": last,
                     "seconds_this_run": round(time.time() - started, 1)},
        "metrics": {"split": split_name, **{k: v for k, v in scores.items()
                                             if k not in ("dice", "iou")}},
    }))
    b.save()
    return {"bundle": str(b.root), "model": str(b.path("finder.keras")),
            "hyperparameters": profiles.as_dict(hp), "metrics": section["metrics"],
            "training": section["training"], "split": {"train": len(train),
                                                               "val": len(val)}}


def _data_summary(ds: Dataset, n_train: int, n_val: int) -> dict[str, object]:
    s = ds.summary()
    return {"root": s["root"], "layout": s["layout"], "images": s["images"],
            "with_masks": s["with_masks"], "classes": s["classes"],
            "split": {"train": n_train, "val": n_val}}


"""Training recipes: `paper` (Miura et al. as published), `lite` (for edge devices, converges on
a CPU in minutes), `edge` (the `lite` finder and a MobileNetV3-Small classifier) and `tiny`
(seconds, for tests and the demo), `sim2real` (domain-randomised synthetic data) and `finetune`
(from a shipped model, below). The names are the keys of FINDER_PROFILES and
CLASSIFIER_PROFILES (one list: `resolve` names them in its error). Every field can be
overridden."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class FinderHP:
    input_size: int
    base_filters: int
    depth: int
    batch_size: int
    lr: float
    epochs: int
    optimizer: str = "adam"
    loss: str = "binary_crossentropy"
    threshold: float = 0.5
    # Keras' default (the paper's); the short recipes use 0.9 so that the moving statistics
    # that validation and inference use catch up with the weights within a few dozen steps.
    bn_momentum: float = 0.99
    # The paper's augmentation, applied to image and mask together (gamma to the image only).
    gamma_min: float = 0.8
    gamma_max: float = 1.2
    shift: float = 0.1
    zoom_min: float = 0.9
    zoom_max: float = 1.1
    val_fraction: float = 0.3  # the paper's 7:3 split
    seed: int = 0
    # Beyond the paper (all off in paper/lite/tiny): flips and quarter turns of image and mask,
    # and the photometric augmentation that makes synthetic training carry over to real
    # imagers (train/augment.py: brightness, contrast, hue, greyscale, blur, noise, JPEG).
    flips: bool = False
    photometric: bool = False
    # Fine-tuning a finder on a few real photos (train/finder.py): this share of every batch
    # is drawn from `synthetic_wells` domain-randomised wells (synth style `random`, rendered
    # once at the start), so the model keeps the prior it learned on them instead of fitting
    # the few photos; 0 trains on DATA alone.
    synthetic_fraction: float = 0.0
    synthetic_wells: int = 256
    # "constant", or "cosine": the rate falls from `lr` to 0 over the epochs, so a fixed
    # schedule ends gently (with val_fraction 0 no validation image chooses the epoch).
    lr_schedule: str = "constant"
    # The encoder's (down units and bottleneck) rate as a share of `lr`: below 1 fine-tuning
    # moves the features learned on many wells less than the decoder that places the outline;
    # 0 trains the decoder only (BatchNorm statistics still move). Adam only.
    encoder_lr_scale: float = 1.0
    # With an init model: the trained weights end this share of the way back to the init's
    # (every weight, BatchNorm statistics too; 0.5 = halfway), which keeps more of the prior
    # than a lower rate does. 0 keeps the trained weights.
    init_blend: float = 0.0


@dataclass(frozen=True)
class ClassifierHP:
    input_size: int
    batch_size: int
    lr: float
    epochs: int
    optimizer: str = "rmsprop"
    loss: str = "categorical_crossentropy"
    dropout: float = 0.2
    bn_momentum: float = 0.99
    hflip: bool = True
    vflip: bool = True
    shift: float = 0.1
    zoom_min: float = 0.9
    zoom_max: float = 1.1
    channel_shift: float = 100.0
    val_fraction: float = 0.4  # the paper's 3:2 split
    seed: int = 0
    backbone: str = "inception_v3"  # models.BACKBONES
    # Beyond the paper (off except in sim2real): the camera and light changes of
    # augment.photometric_finder (brightness, contrast, white balance, hue, greyscale, blur,
    # noise, JPEG), so a classifier trained on synthetic wells carries over to real imagers.
    photometric: bool = False
    # Fine-tuning on a few labelled photos (train/classifier.py), as the finder's fields of
    # the same names: this share of every batch is crops of `synthetic_wells` labelled wells
    # of every synth style (the shipped classifier's own kind of training data, rendered once
    # at the start), "cosine" lets the rate fall to 0 over the epochs (the last one is kept
    # when nothing validates), and `init_blend` moves the result that share of the way back
    # to the init's weights.
    synthetic_fraction: float = 0.0
    synthetic_wells: int = 256
    lr_schedule: str = "constant"
    init_blend: float = 0.0
    # False: only the head (the last Dense) learns; the backbone's weights and its BatchNorm
    # statistics stay the init's (a linear probe on its features, for a few labelled photos).
    train_backbone: bool = True


@dataclass(frozen=True)
class CrystalsHP:
    """The crystal model (models.build_crystals) and its training (train/crystals.py)."""

    input_size: int
    base_filters: int
    depth: int
    batch_size: int
    lr: float
    epochs: int
    # The first conv's stride (2 or 4): 4 halves the model's CPU time and loses small crystals
    # (docs/training.md, "The crystal model").
    stem_stride: int = 2
    optimizer: str = "adam"
    # Crystal pixels are a few per cent of a crop: binary cross-entropy alone learns "never a
    # crystal"; the soft Dice term (weight `dice_weight`) pays for every missed crystal pixel.
    dice_weight: float = 1.0
    threshold: float = 0.5
    # Blobs smaller than this (pixels at input_size) are not boxes: specks and JPEG noise.
    min_area: int = 4
    # A target pixel is a crystal pixel when this share of it is covered after resizing the
    # crystal mask to the crop (thin needles survive the shrink instead of vanishing).
    cover: float = 0.25
    bn_momentum: float = 0.9
    # Augmentation of crop and target together (the finder's: train/augment.py).
    gamma_min: float = 0.7
    gamma_max: float = 1.4
    shift: float = 0.05
    zoom_min: float = 0.9
    zoom_max: float = 1.15
    flips: bool = True
    photometric: bool = True
    val_fraction: float = 0.1
    seed: int = 0
    lr_schedule: str = "constant"  # or "cosine" (to 0 at the last step)


CRYSTALS_PROFILES: dict[str, CrystalsHP] = {
    # The shipped crystal model's recipe (docs/training.md, "The crystal model"): finder crops
    # of synthetic wells of every style and crystal look, with the finder's sim2real
    # augmentation. 128 px: the classifier's own crop (no second crop to cut). A stride-2 stem:
    # stride 4 costs half as much and found half as many real crystals (docs/training.md).
    "sim2real": CrystalsHP(input_size=128, base_filters=12, depth=4, batch_size=16, lr=3e-3,
                           epochs=24, lr_schedule="cosine"),
    "tiny": CrystalsHP(input_size=32, base_filters=4, depth=2, batch_size=4, lr=3e-3, epochs=1,
                       val_fraction=0.25, photometric=False),
}
# `train crystals DATA --init ...` unless --profile says otherwise: the shipped recipe at a
# tenth of its rate, a short cosine schedule, the init's architecture (train/crystals.py).
CRYSTALS_PROFILES["finetune"] = dataclasses.replace(
    CRYSTALS_PROFILES["sim2real"], lr=3e-4, epochs=10)


FINDER_PROFILES: dict[str, FinderHP] = {
    # The paper: 512 px, 64 filters at the top, 4 down/up units, batch 6, Adam 1e-5, 300 epochs.
    "paper": FinderHP(input_size=512, base_filters=64, depth=4, batch_size=6, lr=1e-5, epochs=300),
    # ~63x fewer FLOPs than the paper's U-Net; a higher rate because 300 epochs are not affordable.
    "lite": FinderHP(input_size=256, base_filters=16, depth=4, batch_size=8, lr=1e-3, epochs=30,
                     bn_momentum=0.9),
    "tiny": FinderHP(input_size=64, base_filters=4, depth=4, batch_size=8, lr=3e-3, epochs=2,
                     bn_momentum=0.9),
    # The shipped default finder's recipe (docs/training.md): trained on domain-randomised wells
    # (synth style `random`) with flips, wider zoom and shift, and photometric augmentation.
    # 160 px keeps the drop's edge within a few image pixels on 1280x960 photos.
    "sim2real": FinderHP(input_size=160, base_filters=8, depth=4, batch_size=16, lr=3e-3,
                         epochs=12, bn_momentum=0.9, gamma_min=0.6, gamma_max=1.6, shift=0.15,
                         zoom_min=0.8, zoom_max=1.25, val_fraction=0.1, flips=True,
                         photometric=True),
}
# What `train finder DATA --init ...` uses unless --profile says otherwise: the sim2real
# augmentation, seven eighths of every batch synthetic wells (half was not enough to keep the
# prior, three quarters still lost 0.010 on one split), every masked photo trains (no
# validation split: one held-out photo chose the epoch badly), a short cosine schedule whose
# last epoch is kept, and the result halfway back to the init's weights. docs/training.md,
# "Fine-tuning on 10 masked photos", has every recipe tried.
FINDER_PROFILES["finetune"] = dataclasses.replace(
    FINDER_PROFILES["sim2real"], batch_size=8, lr=3e-4, epochs=20, val_fraction=0.0,
    synthetic_fraction=0.875, lr_schedule="cosine", init_blend=0.5)
# `edge` changes the classifier only; its finder is the `lite` one.
FINDER_PROFILES["edge"] = FINDER_PROFILES["lite"]

CLASSIFIER_PROFILES: dict[str, ClassifierHP] = {
    "paper": ClassifierHP(input_size=299, batch_size=16, lr=1e-5, epochs=300),
    # Inception-V3 kept (what deploys), at 160 px: ~3.5x fewer FLOPs than 299 px. Without
    # ImageNet weights and with CPU-minute budgets, RMSprop 1e-4 and the paper's +-100 channel
    # shift left Inception-V3 at chance on synthetic wells (train accuracy 0.25 after 8 epochs);
    # Adam 1e-3 with a +-20 shift learns (val AUC 0.67 after 11 epochs on 480 images, 96 px).
    "lite": ClassifierHP(input_size=160, batch_size=16, lr=1e-3, epochs=25, bn_momentum=0.9,
                         optimizer="adam", channel_shift=20.0),
    # MobileNetV3-Small (keras.applications, no weights) at the `lite` input size: ~1/25 of
    # Inception-V3's FLOPs at the same size, and it learns from scratch in far fewer CPU
    # minutes (docs/training.md, "The demo's classifier"). Small batches: more steps per epoch.
    "edge": ClassifierHP(input_size=160, batch_size=8, lr=1e-3, epochs=30, bn_momentum=0.9,
                         optimizer="adam", channel_shift=20.0, backbone="mobilenet_v3_small"),
    "tiny": ClassifierHP(input_size=75, batch_size=8, lr=1e-3, epochs=2, bn_momentum=0.9,
                         optimizer="adam", channel_shift=20.0),
    # The shipped default classifier's recipe (docs/training.md, "The shipped classifier"):
    # MobileNetV3-Small at 128 px on finder crops of synthetic wells of every style, with the
    # photometric augmentation; 10 % validation picks the epoch.
    "sim2real": ClassifierHP(input_size=128, batch_size=32, lr=1e-3, epochs=20, bn_momentum=0.9,
                             optimizer="adam", channel_shift=20.0, zoom_min=0.85, zoom_max=1.15,
                             val_fraction=0.1, backbone="mobilenet_v3_small", photometric=True),
}
# What `train classifier DATA --init ...` uses unless --profile says otherwise: the finder's
# fine-tuning lesson (FINDER_PROFILES["finetune"]) on the shipped classifier's own recipe
# (`sim2real`: its augmentation; input size and backbone are the init model's): seven eighths
# of every batch crops of synthetic wells of every style, every labelled photo trains (no
# validation split: a few held-out photos chose the epoch badly), Adam 3e-5 on a cosine
# schedule over 20 epochs whose last epoch is kept, the result halfway back to the init
# (`init_blend=0.5`, as the finder's). The blend was off while the 128-px classifier shipped
# (there it halved the gain); from the 192-px one, without it one of the three real-photo
# splits lost macro AUC and with it none did. The rate was 3e-4 (the finder's) until the
# shipped classifier's fourth training (from it two of the three splits lost at 3e-4, none at
# 1e-4), then 1e-4 until its fifth (from it two lost at 1e-4, none at 3e-5 or with a 0.75
# blend). docs/training.md, "Fine-tuning the classifier on a few labels", has the checks and
# the four decisions.
CLASSIFIER_PROFILES["finetune"] = dataclasses.replace(
    CLASSIFIER_PROFILES["sim2real"], batch_size=8, lr=3e-5, epochs=20, val_fraction=0.0,
    synthetic_fraction=0.875, lr_schedule="cosine", init_blend=0.5)


def resolve(kind: str, profile: str, overrides: dict[str, Any] | None = None) -> Any:
    """The profile's hyperparameters for `kind` ("finder" | "classifier" | "crystals") with
    `overrides`."""
    tables: dict[str, dict[str, Any]] = {"finder": FINDER_PROFILES,
                                         "crystals": CRYSTALS_PROFILES}
    table = tables.get(kind, CLASSIFIER_PROFILES)
    if profile not in table:
        raise UsageError(f"unknown profile {profile!r} for the {kind} "
                         f"(choose one of {', '.join(table)})")
    return apply_overrides(table[profile], overrides or {})


def apply_overrides(hp: Any, overrides: dict[str, Any]) -> Any:
    known = {f.name: f for f in fields(hp)}
    changes = {}
    for key, value in overrides.items():
        if value is None:
            continue
        name = key.replace("-", "_")
        if name not in known:
            model = ("finder" if isinstance(hp, FinderHP) else
                     "crystal model" if isinstance(hp, CrystalsHP) else "classifier")
            raise UsageError(f"unknown hyperparameter {key!r} for the {model} "
                             f"(known: {', '.join(sorted(known))})")
        changes[name] = _convert(name, value, type(getattr(hp, name)))
    return dataclasses.replace(hp, **changes)


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip()
    try:
        if kind is bool:
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(float(text)) if float(text).is_integer() else int(text)
        return kind(text)
    except ValueError:
        raise UsageError(f"hyperparameter {name}={text!r} is not a valid {kind.__name__}") from None


def parse_sets(items: list[str] | None) -> dict[str, str]:
    """`--set key=value` pairs to a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def as_dict(hp: Any) -> dict[str, Any]:
    return dataclasses.asdict(hp)


def pin_init(model: str, init: object, fixed: dict[str, Any],
             overrides: dict[str, Any] | None) -> dict[str, Any]:
    """`overrides` with the architecture an init model's weights need (`fixed`: its input size,
    width, depth or backbone): asking for the same is fine, anything else is a one-line error."""
    out = dict(overrides or {})
    for key, value in fixed.items():
        if out.get(key) is not None and str(out[key]) != str(value):
            raise UsageError(f"--init {init} is a {model} with {key}={value}; "
                             f"fine-tuning cannot change it to {out[key]}")
        out[key] = value
    return out

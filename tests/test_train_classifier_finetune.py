"""The classifier's fine-tuning recipe (`train classifier DATA --init ...`, profile `finetune`):
every labelled photo trains, synthetic wells of every style in every batch, a cosine schedule,
the last epoch kept, blended halfway back toward the init. Slow tests train for real."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import DEFAULT_CLASSES
from edgecrystal.errors import UsageError
from edgecrystal.interface import CLASSIFIER_OUTPUT
from edgecrystal.synth.styles import ALL_STYLES
from edgecrystal.train import classifier, data
from edgecrystal.train.profiles import CLASSIFIER_PROFILES, resolve
from edgecrystal.train.synthetic_mix import classifier_samples

REPO = Path(__file__).resolve().parents[1]


def test_finetune_profile_is_the_shipped_recipe_with_the_finders_lesson() -> None:
    tune, base = CLASSIFIER_PROFILES["finetune"], CLASSIFIER_PROFILES["sim2real"]
    # The augmentation the shipped classifier learned with, so fine-tuning keeps its task.
    for key in ("input_size", "backbone", "photometric", "channel_shift", "shift", "zoom_min",
                "zoom_max", "hflip", "vflip", "bn_momentum", "optimizer"):
        assert getattr(tune, key) == getattr(base, key), key
    assert tune.val_fraction == 0 and 0 < tune.synthetic_fraction < 1
    # Halfway back to the init, as the finder's (docs/training.md: no real-photo split lost).
    assert tune.lr_schedule == "cosine" and tune.init_blend == 0.5
    assert base.synthetic_fraction == 0 and base.init_blend == 0
    assert base.lr_schedule == "constant"


def test_stratified_split_at_zero_holds_nothing_out() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2, 3, 3])
    train, val = data.split_stratified(labels, 0.0, seed=4)
    assert train.tolist() == list(range(8)) and val.size == 0
    # Any other share still holds one of each class with two or more images out.
    train, val = data.split_stratified(labels, 0.1, seed=4)
    assert sorted(labels[val].tolist()) == [0, 1, 3] and train.size == 5


def test_classifier_wells_are_labelled_seeded_of_every_style() -> None:
    first, again = classifier_samples(10, 1), classifier_samples(10, 1)
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].rgb, classifier_samples(1, 2)[0].rgb)
    assert sorted({str(s.label) for s in first}) == sorted(DEFAULT_CLASSES)
    for sample in first:
        assert sample.mask is not None and sample.mask.any()  # never an empty, unlabelled well
        assert 320 <= max(sample.rgb.shape[:2]) <= 512
    assert len(ALL_STYLES) == 5  # the four imager styles and `random`, balanced per class
    # As the shipped classifier's training: some wells are close-ups, the drop filling the frame.
    cover = [float(s.mask.mean()) for s in first if s.mask is not None]
    assert any(c >= 0.85 for c in cover) and any(c < 0.6 for c in cover), cover


def test_synthetic_share_refusals() -> None:
    hp = resolve("classifier", "finetune", {"synthetic_fraction": 1.0})
    wells = (np.zeros((16, 8, 8, 3), np.uint8), np.zeros(16, np.int64))
    with pytest.raises(UsageError, match="leaves no room"):
        classifier._synthetic_share(hp, wells, 4)
    hp = resolve("classifier", "finetune")
    shared = classifier._synthetic_share(hp, wells, 4)
    assert shared is not None
    xs, ys, count = shared
    assert count == 7 and ys.shape == (16, 4) and xs is wells[0]
    assert classifier._synthetic_share(resolve("classifier", "sim2real"), wells, 4) is None
    # A small batch keeps one of DATA's images: 7/8 of 4 rounds to 4, and 3 are synthetic.
    small = classifier._synthetic_share(resolve("classifier", "finetune", {"batch_size": 4}),
                                        wells, 4)
    assert small is not None and small[2] == 3
    # Wells labelled with the default classes cannot train a classifier of other classes.
    with pytest.raises(UsageError, match="synthetic_fraction=0"):
        classifier.synthetic_crops(None, hp, ["good", "bad"], "none", None)  # type: ignore[arg-type]


def test_check_script_halves_are_stratified_and_seeded() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import finetune_check
    finally:
        sys.path.remove(str(REPO / "scripts"))
    labels = ["clear"] * 2 + ["crystals"] * 8 + ["precipitate"] * 3 + ["other"] * 3
    rows = [{"path": f"{k}.jpg", "label": label} for k, label in enumerate(labels)]
    splits = [finetune_check.stratified_half(rows, s, None) for s in range(3)]
    assert splits[0] == finetune_check.stratified_half(rows, 0, None)
    assert len({tuple(train) for train, _ in splits}) == 3
    for train, rest in splits:
        assert len(train) == len(rest) == 8 and not set(train) & set(rest)
        for name in ("clear", "crystals", "precipitate", "other"):
            assert any(labels[k] == name for k in rest), name
        assert sum(labels[k] == "crystals" for k in train) == 4


@pytest.mark.slow
def test_init_default_trains_every_photo_with_synthetic_wells(tmp_path: Path) -> None:
    from edgecrystal.bundle import Bundle
    from edgecrystal.synth import generate_dataset

    data_dir = tmp_path / "data"
    generate_dataset(data_dir, 8, seed=6, size=(160, 200), workers=1)
    out = tmp_path / "tuned"
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "train", "classifier",
                           str(data_dir), "--bundle", str(out), "--init", "default",
                           "--epochs", "2", "--set", "synthetic_wells=16"],
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    assert "training AUC" in done.stdout and "validation AUC" not in done.stdout
    meta = json.loads((out / "bundle.json").read_text())
    section = meta["classifier"]
    assert section["profile"] == "finetune"
    assert section["hyperparameters"]["synthetic_fraction"] == 0.875
    assert section["data"]["split"] == {"train": 8, "val": 0}
    assert section["metrics"]["split"] == "training"
    assert section["training"]["best_epoch"] == 2  # the last epoch, nothing chose another
    assert any("no validation split" in w for w in section["warnings"])
    # No held-out set: no confidence is fitted, and the bundle says how to fit one.
    assert "not fitted" in meta["confidence"]["note"]
    assert not Bundle.open(out).confidence().fitted
    assert Bundle.open(out).variant("classifier", "fp32")  # evaluate scores the ONNX path


@pytest.mark.slow
def test_a_frozen_backbone_keeps_its_weights_and_statistics_and_the_head_learns() -> None:
    """`--set train_backbone=false`: a linear probe. One training step moves the head only;
    the backbone's weights and BatchNorm moving statistics stay what they were."""
    hp = resolve("classifier", "sim2real", {"input_size": 32, "batch_size": 4,
                                            "train_backbone": "false", "lr": 1e-2})
    model = classifier.build(hp, len(DEFAULT_CLASSES))
    classifier.compile_classifier(model, hp)
    backbone = next(layer for layer in model.layers if hasattr(layer, "layers"))
    before = [w.copy() for w in backbone.get_weights()]  # moving statistics included
    head = model.get_layer(CLASSIFIER_OUTPUT)
    head_before = [w.copy() for w in head.get_weights()]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    y = data.onehot(np.array([0, 1, 2, 3]), len(DEFAULT_CLASSES))
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, backbone.get_weights(), strict=True))
    assert any(not np.array_equal(a, b)
               for a, b in zip(head_before, head.get_weights(), strict=True))

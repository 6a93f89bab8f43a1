"""The fine-tuning recipe (`train finder DATA --init ...`, profile `finetune`): synthetic wells
mixed into every batch, no validation split, a cosine schedule. Slow tests train for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.errors import UsageError
from edgecrystal.train import data, finder
from edgecrystal.train.profiles import FINDER_PROFILES, resolve
from edgecrystal.train.synthetic_mix import synthetic_samples


def test_finetune_profile_keeps_the_shipped_recipe_and_mixes_synthetic_wells() -> None:
    tune, base = FINDER_PROFILES["finetune"], FINDER_PROFILES["sim2real"]
    # The augmentation the shipped finder learned with, so fine-tuning does not change the task.
    for key in ("input_size", "base_filters", "depth", "flips", "photometric", "gamma_min",
                "gamma_max", "shift", "zoom_min", "zoom_max", "bn_momentum"):
        assert getattr(tune, key) == getattr(base, key), key
    assert 0 < tune.synthetic_fraction < 1 and tune.val_fraction == 0
    assert tune.lr_schedule == "cosine" and base.synthetic_fraction == 0
    assert 0 < tune.init_blend < 1 and base.init_blend == 0 and tune.encoder_lr_scale == 1


def test_split_without_validation_trains_on_every_image() -> None:
    train, val = data.split_random(10, 0.0, seed=3)
    assert train.tolist() == list(range(10)) and val.size == 0
    train, val = data.split_random(10, 0.1, seed=3)
    assert train.size == 9 and val.size == 1


def test_synthetic_wells_are_seeded_masked_and_sized_like_the_shipped_data() -> None:
    first, again, other = (synthetic_samples(4, 1), synthetic_samples(4, 1),
                           synthetic_samples(1, 2))
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0].rgb, other[0].rgb)
    for sample in first:
        assert sample.mask is not None and sample.mask.shape == sample.rgb.shape[:2]
        assert 400 <= max(sample.rgb.shape[:2]) <= 640
    assert sum(bool(s.mask.any()) for s in first if s.mask is not None) >= 3


def test_a_batch_all_synthetic_is_refused() -> None:
    hp = resolve("finder", "finetune", {"synthetic_fraction": 1.0})
    with pytest.raises(UsageError, match="no room"):
        finder._synthetic_share(hp)


@pytest.mark.slow
def test_mixed_batches_hold_the_synthetic_share() -> None:
    own = np.zeros((10, 4, 4, 3), np.uint8)
    extra = np.full((6, 4, 4, 3), 255, np.uint8)
    batches = data.make_batches(own, own[..., :1].astype(np.float32), 8, 0, None, "finder",
                                extra=(extra, extra[..., :1].astype(np.float32), 4))
    assert len(batches) == 3  # 10 own images, 4 per batch
    seen = []
    for b in range(len(batches)):
        images, masks = batches[b]
        assert (images[:, 0, 0, 0] == 255).sum() == 4 and masks.shape[0] == images.shape[0]
        seen.append(int((images[:, 0, 0, 0] == 0).sum()))
    assert sum(seen) == 10  # an epoch is one pass over the own images


@pytest.mark.slow
def test_cosine_schedule_falls_to_zero() -> None:
    hp = resolve("finder", "finetune", {"epochs": 4, "lr": 1e-3})
    rate = finder.learning_rate(hp, steps_per_epoch=5)
    assert float(rate(0)) == pytest.approx(1e-3) and float(rate(20)) == pytest.approx(0.0)
    assert finder.learning_rate(resolve("finder", "sim2real"), 5) == 3e-3


@pytest.mark.slow
def test_init_default_fine_tunes_with_the_finetune_recipe(tmp_path: Path) -> None:
    from edgecrystal.bundle import Bundle
    from edgecrystal.pretrained import bundle_path
    from edgecrystal.synth import generate_dataset

    data_dir = tmp_path / "data"
    generate_dataset(data_dir, 6, seed=5, size=(160, 200), styles=["random"], workers=1)
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "train", "finder", str(data_dir),
                           "--bundle", str(tmp_path / "b"), "--init", "default", "--epochs", "1",
                           "--set", "synthetic_wells=8"], capture_output=True, text=True,
                          timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    section = Bundle.open(tmp_path / "b").meta["finder"]
    assert section["profile"] == "finetune"
    assert section["hyperparameters"]["synthetic_fraction"] == 0.875
    assert section["hyperparameters"]["init_blend"] == 0.5
    # Every masked image trains; the score says it is on them, not on held-out ones.
    assert section["data"]["split"] == {"train": 6, "val": 0}
    assert section["metrics"]["split"] == "training" and section["metrics"]["dice_mean"] > 0.5
    assert section["training"]["best_epoch"] == 1  # the last epoch, nothing chose another
    shipped = Bundle.open(bundle_path("finder")).meta["files"]["finder.keras"]
    assert Bundle.open(tmp_path / "b").meta["files"]["finder.keras"] != shipped


def test_encoder_weights_are_the_down_units_and_the_bottleneck() -> None:
    for path in ("down0_conv1/kernel", "down3_bn2/gamma", "bottom_conv2/kernel"):
        assert finder.is_encoder_variable(path), path
    for path in ("up3/kernel", "upconv0_bn1/beta", "mask/bias", "skip0"):
        assert not finder.is_encoder_variable(path), path


@pytest.mark.parametrize("overrides", [{"encoder_lr_scale": 1.5},
                                       {"encoder_lr_scale": -0.1},
                                       {"encoder_lr_scale": 0.1, "optimizer": "sgd"}])
def test_an_encoder_rate_share_outside_0_to_1_or_without_adam_is_refused(
        overrides: dict[str, object]) -> None:
    hp = resolve("finder", "finetune", overrides)
    with pytest.raises(UsageError, match="encoder_lr_scale"):
        finder.finder_optimizer(hp, steps_per_epoch=5)


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.0, 0.1])
def test_the_encoder_steps_at_its_share_of_the_decoders_rate(scale: float,
                                                              tmp_path: Path) -> None:
    from edgecrystal import models

    hp = resolve("finder", "tiny", {"optimizer": "adam", "encoder_lr_scale": scale})
    model = finder.build(hp)
    finder.compile_finder(model, hp)
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8)
    masks = (rng.random((4, 64, 64, 1)) > 0.5).astype(np.float32)
    model.fit(images, masks, epochs=1, batch_size=4, verbose=0)  # one Adam step
    # Adam's first step moves every weight by about the rate (3e-3 in `tiny`), whatever its
    # gradient: the encoder's by `scale` of it.
    for variable in model.trainable_variables:
        moved = float(np.abs(variable.numpy() - before[variable.path]).max())
        expected = hp.lr * (scale if finder.is_encoder_variable(variable.path) else 1.0)
        assert moved == pytest.approx(expected, rel=0.05, abs=1e-7), variable.path
    # A checkpoint with this optimizer loads again (what --resume does).
    model.save(tmp_path / "last.keras")
    loaded = models._keras().models.load_model(tmp_path / "last.keras")
    assert loaded.optimizer.encoder_lr_scale == scale


@pytest.mark.slow
def test_init_blend_moves_the_weights_that_share_back_to_the_init() -> None:
    hp = resolve("finder", "tiny")
    trained, start = finder.build(hp), finder.build(resolve("finder", "tiny", {"seed": 1}))
    start.set_weights([w + 1.0 for w in trained.get_weights()])
    before = trained.get_weights()
    finder.blend_with_init(trained, start, 0.25)
    for blended, old in zip(trained.get_weights(), before, strict=True):
        assert np.allclose(blended, old + 0.25)
    with pytest.raises(UsageError, match="init_blend"):
        finder.blend_with_init(trained, start, 1.5)

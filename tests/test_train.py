"""Training: profiles and overrides, augmentation, splits, the trained bundle, resume after
SIGINT, and the one-line errors of the train commands."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.errors import UsageError
from edgecrystal.train import augment, data, profiles

REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


# ------------------------------------------------------------------------- profiles, overrides
def test_profiles_paper_values_and_overrides() -> None:
    f = profiles.resolve("finder", "paper")
    assert (f.input_size, f.base_filters, f.depth, f.batch_size, f.lr, f.epochs, f.optimizer) == (
        512, 64, 4, 6, 1e-5, 300, "adam")
    c = profiles.resolve("classifier", "paper")
    assert (c.input_size, c.batch_size, c.lr, c.epochs, c.optimizer, c.channel_shift) == (
        299, 16, 1e-5, 300, "rmsprop", 100.0)
    hp = profiles.resolve("finder", "tiny", {"epochs": 7, **profiles.parse_sets(
        ["shift=0.05", "optimizer=sgd", "lr=1e-2"])})
    assert (hp.epochs, hp.shift, hp.optimizer, hp.lr) == (7, 0.05, "sgd", 0.01)
    with pytest.raises(UsageError):
        profiles.resolve("finder", "tiny", {"no_such_key": 1})
    with pytest.raises(UsageError):
        profiles.resolve("finder", "tiny", {"epochs": "many"})
    with pytest.raises(UsageError):
        profiles.resolve("finder", "huge")
    with pytest.raises(UsageError):
        profiles.parse_sets(["novalue"])


# ------------------------------------------------------------------------- augmentation, splits
def test_finder_augmentation_moves_image_and_mask_together() -> None:
    hp = profiles.resolve("finder", "tiny")
    mask = np.zeros((64, 64), np.float32)
    mask[10:40, 20:50] = 1
    img = (np.repeat(mask[..., None], 3, axis=2) * 255).astype(np.uint8)  # white where the drop is
    a_img, a_mask = augment.augment_finder(img, mask, np.random.default_rng(1), hp)
    assert a_mask.shape == (64, 64, 1) and set(np.unique(a_mask)) <= {0.0, 1.0}
    # Gamma keeps 0 and 255, so the image's bright part must be where the mask went.
    agree = np.mean((a_img[..., 0] > 127) == (a_mask[..., 0] > 0.5))
    assert agree > 0.97
    assert not np.array_equal(a_mask[..., 0], mask)  # it did move or zoom
    again = augment.augment_finder(img, mask, np.random.default_rng(1), hp)
    np.testing.assert_array_equal(again[0], a_img)  # seeded


def test_classifier_augmentation_ranges() -> None:
    hp = profiles.resolve("classifier", "tiny")
    img = np.full((32, 32, 3), 128, np.uint8)
    shifts = []
    for seed in range(30):
        out = augment.augment_classifier(img, np.random.default_rng(seed), hp)
        assert out.dtype == np.uint8 and out.shape == img.shape
        shifts.append(out.reshape(-1, 3).mean(axis=0) - 128)
    shifts = np.array(shifts)
    assert np.abs(shifts).max() <= 100.5
    # Per-channel: channels shift differently.
    assert np.abs(shifts[:, 0] - shifts[:, 1]).max() > 10


def test_splits_follow_the_paper() -> None:
    tr, va = data.split_random(100, 0.3, seed=0)
    assert (len(tr), len(va)) == (70, 30) and not set(tr) & set(va)
    np.testing.assert_array_equal(tr, data.split_random(100, 0.3, seed=0)[0])
    labels = np.array([0] * 50 + [1] * 25 + [2] * 25)
    tr, va = data.split_stratified(labels, 0.4, seed=0)
    assert (len(tr), len(va)) == (60, 40)
    assert np.bincount(labels[va]).tolist() == [20, 10, 10]
    sub = data.subsample_stratified(tr, labels, 30, seed=0)
    assert len(sub) == 30 and set(sub) <= set(tr)
    assert np.bincount(labels[sub]).tolist() in ([15, 7, 8], [15, 8, 7])


# ------------------------------------------------------------------------- trained bundle
@pytest.mark.slow
def test_trained_bundle_records_everything(trained_bundle: tuple[Path, Path]) -> None:
    bundle_path, _ = trained_bundle
    b = Bundle.open(bundle_path)
    assert b.verify_files() == []
    assert set(b.meta["files"]) >= {"finder.keras", "classifier.keras"}
    f, c = b.meta["finder"], b.meta["classifier"]
    assert f["profile"] == "tiny" and f["input_size"] == 64 and f["base_filters"] == 4
    assert f["hyperparameters"]["epochs"] == 2 and f["training"]["epochs_completed"] == 2
    assert f["data"]["split"] == {"train": 17, "val": 7}
    assert 0.0 <= f["metrics"]["dice_mean"] <= 1.0
    assert c["crop"] == "finder" and c["input_size"] == 75 and c["profile"] == "tiny"
    assert sum(c["data"]["split"].values()) == 24
    assert set(c["metrics"]["roc_auc"]) == {*b.classes, "macro"}
    assert b.classes == ["clear", "crystals", "precipitate", "other"]
    for model in ("finder", "classifier"):
        state = json.loads((bundle_path / "checkpoints" / model / "state.json").read_text())
        assert state["epoch"] == b.meta[model]["training"]["epochs_completed"]
        assert (bundle_path / "logs" / model).is_dir()


@pytest.mark.slow
def test_train_classifier_manual_crop_via_cli(trained_bundle: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    _, data_path = trained_bundle
    bundle = tmp_path / "manual"
    r = _cli("train", "classifier", str(data_path), "--bundle", str(bundle), "--crop", "manual",
             "--profile", "tiny", "--epochs", "1", "--set", "channel_shift=50")
    assert r.returncode == 0, r.stderr[-2000:]
    # Without -v it printed nothing for minutes, and nothing about a 10-image validation set.
    assert "epoch 1/1: " in r.stderr and " loss " in r.stderr
    b = Bundle.open(bundle)
    val = b.meta["classifier"]["data"]["split"]["val"]
    assert val < 20 and f"warning: the validation set is {val} image(s): too few" in r.stderr
    assert b.meta["classifier"]["warnings"][0].startswith(f"the validation set is {val} image")
    assert b.meta["classifier"]["crop"] == "manual"
    assert b.meta["classifier"]["hyperparameters"]["channel_shift"] == 50.0
    assert "finder" not in b.meta and b.verify_files() == []


@pytest.mark.slow
def test_build_engines_repeats_trains_useless_classifier_verdict(
        trained_bundle: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    bundle = tmp_path / "useless"
    shutil.copytree(trained_bundle[0], bundle)
    b = Bundle.open(bundle)
    b.meta["classifier"]["useless"] = "the classifier's scores barely vary over 12 images"
    b.save()
    r = _cli("build-engines", str(bundle), "--precision", "fp32")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning: classifier: the classifier's scores barely vary" in r.stdout


# ------------------------------------------------------------------------- resume after SIGINT
@pytest.mark.slow
def test_resume_after_sigint_continues_the_epoch_count(trained_bundle: tuple[Path, Path],
                                                       tmp_path: Path) -> None:
    _, data_path = trained_bundle
    bundle = tmp_path / "b"
    state = bundle / "checkpoints" / "finder" / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecrystal", "train", "finder", str(data_path), "--bundle",
         str(bundle), "--profile", "tiny", "--epochs", "200"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not state.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert state.is_file(), "no checkpoint appeared"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("edgecrystal: error: training interrupted") and "--resume" in last
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 200
    assert not (bundle / "finder.keras").exists()

    r = _cli("train", "finder", str(data_path), "--bundle", str(bundle), "--profile", "tiny",
             "--epochs", str(done + 2), "--resume")
    assert r.returncode == 0, r.stderr[-2000:]
    training = Bundle.open(bundle).meta["finder"]["training"]
    assert training["initial_epoch"] == done
    assert training["epochs_completed"] == done + 2
    history = json.loads(state.read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, done + 3))


# ------------------------------------------------------------------------- one-line errors
def _one_line_error(r: subprocess.CompletedProcess[str], needle: str) -> None:
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("edgecrystal: error:") and needle in lines[0]


@pytest.mark.slow
def test_bad_inputs_give_one_line_errors(trained_bundle: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    _, data_path = trained_bundle
    nomask = tmp_path / "nomask"
    for cls in ("clear", "crystals"):
        (nomask / cls).mkdir(parents=True)
        src = next((data_path / "images").iterdir())
        (nomask / cls / src.name).write_bytes(src.read_bytes())
    _one_line_error(_cli("train", "finder", str(nomask), "--bundle", str(tmp_path / "b1"),
                         "--profile", "tiny"), "mask")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line_error(_cli("train", "finder", str(data_path), "--bundle", str(afile),
                         "--profile", "tiny"), "is a file")
    _one_line_error(_cli("train", "classifier", str(data_path), "--bundle", str(tmp_path / "b2"),
                         "--profile", "tiny", "--crop", "manual", "--classes", "clear,crystals"),
                    "unknown class label")
    no_finder = Bundle.open(tmp_path / "no-finder", create=True)
    no_finder.save()
    _one_line_error(_cli("train", "classifier", str(data_path), "--bundle", str(tmp_path / "b3"),
                         "--profile", "tiny", "--crop", "finder", "--finder", str(no_finder.root)),
                    "has no finder")
    _one_line_error(_cli("train", "classifier", str(data_path), "--bundle", str(tmp_path / "b4"),
                         "--profile", "tiny", "--set", "bogus=1"), "unknown hyperparameter")


@pytest.mark.slow
def test_wrong_imagenet_weights_file_is_one_line(trained_bundle: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    from edgecrystal import models

    _, data_path = trained_bundle
    wrong = tmp_path / "wrong.weights.h5"
    models.build_finder(32, 4, 2).save_weights(str(wrong))
    _one_line_error(_cli("train", "classifier", str(data_path), "--bundle", str(tmp_path / "b"),
                         "--profile", "tiny", "--crop", "none", "--imagenet-weights", str(wrong)),
                    "does not fit Inception-V3")

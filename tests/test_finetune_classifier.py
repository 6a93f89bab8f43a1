"""`train classifier --init`: fine-tuning a trained classifier on a few labels, and the
confidence refit at the end of training (issue 22 items 5 and 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal import pretrained
from edgecrystal.bundle import Bundle
from edgecrystal.errors import BundleError


def test_shipped_classifier_is_found_or_refused_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # This installation ships one: the default bundle's classifier.
    assert pretrained.shipped_classifier() == pretrained.default_bundle_path()
    monkeypatch.setattr(pretrained, "HERE", tmp_path)
    with pytest.raises(BundleError, match="no classifier ships") as refused:
        pretrained.shipped_classifier()
    assert "\n" not in str(refused.value)
    # A finder-only bundle in the folder is not a classifier either.
    shipped = Bundle.open(tmp_path / "bundle", create=True)
    shipped.section("finder").update({"input_size": 64})
    shipped.save()
    with pytest.raises(BundleError, match="no classifier ships"):
        pretrained.shipped_classifier()
    shipped.section("classifier").update({"input_size": 75})
    shipped.save()
    assert pretrained.shipped_classifier() == tmp_path / "bundle"


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", "train", "classifier", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_init_fine_tunes_a_bundles_classifier_and_refits_confidence(tmp_path: Path) -> None:
    from edgecrystal.synth import generate_dataset

    # The source: a small MobileNetV3-Small on finder crops (an Inception-V3 source made this
    # test take minutes and ~10 GB for the same checks).
    data = tmp_path / "data"
    generate_dataset(data, 24, seed=3, size=96, workers=1)
    source = tmp_path / "source"
    made = _train(str(data), "--bundle", str(source), "--profile", "tiny", "--set",
                  "backbone=mobilenet_v3_small", "--input-size", "64", "--epochs", "1")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "tuned"
    # The `finetune` profile holds nothing out; a validation split is what the refit needs.
    done = _train(str(data), "--bundle", str(out), "--init", str(source), "--epochs", "1",
                  "--set", "val_fraction=0.4", "--set", "synthetic_wells=8")
    assert done.returncode == 0, done.stderr
    assert "confidence of" in done.stdout
    meta = json.loads((out / "bundle.json").read_text())
    src = json.loads((source / "bundle.json").read_text())
    classifier = meta["classifier"]
    assert classifier["profile"] == "finetune" and classifier["init"] == str(source)
    assert classifier["input_size"] == src["classifier"]["input_size"]
    assert meta["finder"]["adopted_from"] == str(source.resolve())  # the init's finder crops
    fitted = meta["confidence"]
    assert fitted["data"]["split"] == "validation of train classifier"
    assert fitted["classifier_fp32_sha256"] == meta["onnx"]["classifier"]["fp32"]["sha256"]
    assert fitted["data"]["images"] == classifier["data"]["split"]["val"]
    assert "temperature" in fitted or "not fitted" in fitted["note"]
    assert Bundle.open(out).confidence().fitted == ("temperature" in fitted)

    # Another backbone cannot take the init's weights: one line, nothing written.
    refused = _train(str(data), "--bundle", str(tmp_path / "other"), "--init", str(source),
                     "--set", "backbone=inception_v3")
    assert refused.returncode != 0 and "fine-tuning cannot change it" in refused.stderr
    assert not (tmp_path / "other").exists()


@pytest.mark.slow
def test_init_at_another_input_size_takes_every_weight(tmp_path: Path) -> None:
    # Both backbones pool globally, so a classifier trained at one size starts another at a
    # larger one with every weight (the shipped classifier went from 128 to a larger input so).
    from edgecrystal.train import profiles
    from edgecrystal.train.classifier import build

    small = profiles.resolve("classifier", "sim2real", {"input_size": 64})
    source = build(small, 4)
    path = tmp_path / "source.keras"
    source.save(path)
    large = build(profiles.resolve("classifier", "sim2real", {"input_size": 96}), 4, init=path)
    assert large.input_shape == (None, 96, 96, 3)
    pairs = list(zip(source.get_weights(), large.get_weights(), strict=True))
    assert pairs and all(a.shape == b.shape and (a == b).all() for a, b in pairs)

"""The shipped default finder: `edgecrystal models list|path`, its files and provenance, and what
it does on wells it was not trained on (real ONNX Runtime sessions on the shipped FP32 ONNX, no
TensorFlow). Fine-tuning it (`train finder --init default`) is in the slow tier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecrystal import metrics, preprocess
from edgecrystal.bundle import Bundle
from edgecrystal.pretrained import adopt_finder, bundle_path, list_models
from edgecrystal.synth.generate import image_rng
from edgecrystal.synth.randomized import render_random


def _edgecrystal(*args: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def session():
    import onnxruntime as ort

    b = Bundle.open(bundle_path("finder"))
    return ort.InferenceSession(str(b.onnx_variant("finder", "fp32")),
                                providers=["CPUExecutionProvider"]), b


def _probability(session, rgb: np.ndarray) -> np.ndarray:
    """The finder's drop probability at the image's size, as the runtime computes it."""
    sess, b = session
    size = int(b.meta["finder"]["input_size"])
    x = preprocess.finder_input(rgb, size)[None]
    prob = sess.run(None, {sess.get_inputs()[0].name: x})[0][0]
    return preprocess.mask_to_image(prob, *rgb.shape[:2])


def test_shipped_files_match_their_hashes_and_are_small() -> None:
    b = Bundle.open(bundle_path("finder"))
    assert b.verify_files() == []
    assert set(b.meta["files"]) == {"finder.keras", "onnx/finder.fp32.onnx"}
    for rel in b.meta["files"]:
        assert (b.root / rel).stat().st_size < 8_000_000  # a few MB: fits in git
    b.check_preprocess()


def test_models_list_shows_provenance() -> None:
    done = _edgecrystal("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert [m["name"] for m in listed] == ["finder", "bundle", "crystals"]
    finder = listed[0]
    assert finder["name"] == "finder" and Path(finder["path"]) == bundle_path("finder")
    assert "scripts/build_default_finder.py" in finder["command"]
    assert isinstance(finder["seed"], int)
    assert finder["data"]["train"]["styles"] == ["random"]
    assert finder["metrics"]["heldout_synthetic_random"]["images"] > 0
    assert finder == list_models()[0]
    text = _edgecrystal("models", "list")
    assert text.returncode == 0 and "command:" in text.stdout and "seed" in text.stdout


def test_models_path_and_unknown_name() -> None:
    done = _edgecrystal("models", "path", "finder")
    assert done.returncode == 0
    assert (Path(done.stdout.strip()) / "bundle.json").is_file()
    bad = _edgecrystal("models", "path", "nosuch")
    assert bad.returncode != 0 and "nosuch" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_finds_drops_in_unseen_synthetic_wells(session) -> None:
    """Seeds far from the training data's: the finder outlines the drop."""
    dice = []
    for i in range(8):
        rgb, mask, _ = render_random(image_rng(424242, i), 640, 480, "crystals")
        dice.append(metrics.dice(_probability(session, rgb) >= 0.5, mask))
    assert np.mean(dice) > 0.8, dice


def test_empty_well_gives_no_drop(session) -> None:
    """No drop is an answer: the crop step gets nothing confident and says found=False."""
    found = []
    for i in range(8):
        rgb = render_random(image_rng(777, i), 640, 480, "clear", empty_chance=1.0)[0]
        found.append(preprocess.crop_drop(rgb, _probability(session, rgb), 64).found)
    assert sum(found) <= 1, found


def test_adopt_copies_the_finder_into_a_bundle(tmp_path: Path) -> None:
    b = Bundle.open(tmp_path / "bundle", create=True)
    assert adopt_finder(b) == str(bundle_path("finder"))
    again = Bundle.open(tmp_path / "bundle")
    assert again.meta["finder"]["adopted_from"] == "edgecrystal.pretrained/finder"
    assert again.verify_files() == []
    shipped = Bundle.open(bundle_path("finder"))
    assert again.meta["files"]["finder.keras"] == shipped.meta["files"]["finder.keras"]
    # The FP32 ONNX made from that very Keras file comes along (build-engines keeps it: no
    # TensorFlow export); nothing else of the finder's ONNX does.
    assert set(again.variants("finder")) == {"fp32"} and not again.is_stale("finder", "fp32")
    rel = again.variant("finder", "fp32")["file"]
    assert again.meta["files"][rel] == shipped.meta["files"][rel]


def test_adopt_leaves_a_damaged_fp32_behind(tmp_path: Path) -> None:
    import shutil

    donor = tmp_path / "donor"
    shutil.copytree(bundle_path("finder"), donor)
    rel = Bundle.open(donor).variant("finder", "fp32")["file"]
    (donor / rel).write_bytes(b"not the exported model")
    b = Bundle.open(tmp_path / "bundle", create=True)
    adopt_finder(b, donor)
    again = Bundle.open(tmp_path / "bundle")
    assert "finder" not in again.meta.get("onnx", {})  # build-engines exports it again
    assert again.verify_files() == []


@pytest.mark.slow
def test_fine_tune_from_the_shipped_finder(tmp_path: Path) -> None:
    from edgecrystal.synth import generate_dataset

    data = tmp_path / "data"
    generate_dataset(data, 8, seed=5, size=(160, 200), styles=["random"], workers=1)
    done = _edgecrystal("train", "finder", str(data), "--bundle", str(tmp_path / "b"),
                        "--profile", "sim2real", "--init", "default", "--epochs", "1",
                        "--lr", "1e-4", timeout=900)
    assert done.returncode == 0, done.stderr
    b = Bundle.open(tmp_path / "b")
    shipped = Bundle.open(bundle_path("finder")).meta["finder"]
    assert b.meta["finder"]["init"] == str(bundle_path("finder"))
    for key in ("input_size", "base_filters", "depth"):
        assert b.meta["finder"][key] == shipped[key]
    # A fine-tuned finder after one epoch on 5 images still finds drops: it started trained.
    assert b.meta["finder"]["metrics"]["dice_mean"] > 0.5
    clash = _edgecrystal("train", "finder", str(data), "--bundle", str(tmp_path / "c"),
                         "--init", "default", "--input-size", "64", timeout=900)
    assert clash.returncode != 0 and "--init" in clash.stderr

"""Crystals first and honest confidence (issue 22 items 4 and 6): the fit on held-out wells
through the FP32 ONNX, what scoring then writes (calibrated scores, crystals_hit, uncertain),
the summary CSV, the index column and its migration, and the hit list that uses it."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from index_helpers import write_image, write_result_for

from edgecrystal import confidence
from edgecrystal.bundle import Bundle
from edgecrystal.index.store import Index
from edgecrystal.index.sync import sync
from edgecrystal.naming import NameReader
from edgecrystal.results import SUMMARY_NAME, load_result, result_path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Held-out synthetic wells with labels, every class present (seed apart from training)."""
    from edgecrystal.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("heldout") / "data"
    generate_dataset(out, 32, seed=91, size=96, workers=1)
    return out


# ------------------------------------------------------------------ the numbers
def test_temperature_fit_recovers_an_over_confident_model() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 2.0, (4000, 4))
    true_p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in true_p])
    over_confident = confidence.calibrate(true_p, 1 / 3)  # logits x 3
    fitted = confidence.fit_temperature(over_confident, labels)
    assert 2.6 < fitted < 3.4
    calibrated = confidence.calibrate(over_confident, fitted)
    assert confidence.nll(calibrated, labels) < confidence.nll(over_confident, labels)
    assert (confidence.expected_calibration_error(calibrated, labels)
            < confidence.expected_calibration_error(over_confident, labels))
    np.testing.assert_allclose(confidence.calibrate(true_p, 1.0), true_p)


def test_recall_threshold_keeps_the_recall_asked_for() -> None:
    scores = np.random.default_rng(1).uniform(0, 1, 37)
    for recall in (0.5, 0.9, 0.95, 1.0):
        threshold = confidence.recall_threshold(scores, recall)
        assert (scores >= threshold).mean() >= recall
        # The highest such threshold: one step up loses the recall.
        above = scores[scores > threshold]
        assert above.size == 0 or (scores >= above.min()).mean() < recall


def test_uncertain_bounds() -> None:
    assert confidence.uncertain([0.45, 0.3, 0.15, 0.1])  # low top score
    assert confidence.uncertain([0.55, 0.40, 0.05, 0.0])  # top two close
    assert not confidence.uncertain([0.62, 0.38, 0.0, 0.0])
    assert not confidence.uncertain([0.9, 0.05, 0.03, 0.02])


def test_a_crystals_hit_is_a_crystals_label_or_a_score_over_the_threshold() -> None:
    classes = ("clear", "crystals", "precipitate", "other")
    calibrated = np.array([[0.2, 0.5, 0.2, 0.1],    # labelled crystals, under the threshold
                           [0.5, 0.35, 0.1, 0.05],  # labelled clear, over it
                           [0.7, 0.1, 0.1, 0.1]])   # neither
    fitted = confidence.Confidence(1.0, 0.3, fitted=True)
    assert fitted.crystals_hit(classes, calibrated).tolist() == [True, True, False]
    assert confidence.Confidence().crystals_hit(classes, calibrated).tolist() == [True, False,
                                                                                   False]
    assert fitted.crystals_hit(("a", "b", "c", "d"), calibrated) is None


# ------------------------------------------------------------------ fit, score, results
def test_fit_then_score_writes_calibrated_scores_hits_and_uncertain(
        fast_bundle: Path, held_out: Path, tmp_path: Path) -> None:
    from onnx_fixtures import write_wells

    bundle = tmp_path / "bundle"
    shutil.copytree(fast_bundle, bundle)
    plate = tmp_path / "plate"
    write_wells(plate, 6)
    before = Bundle.open(bundle).runtime_fingerprint("onnxruntime", "fp32")

    fitted = _cli("bundle", "fit-confidence", str(bundle), "--data", str(held_out),
                  "--threads", "1")
    assert fitted.returncode == 0, fitted.stderr
    assert "temperature" in fitted.stdout and "crystals threshold" in fitted.stdout
    section = json.loads((bundle / "bundle.json").read_text())["confidence"]
    assert section["data"]["images"] == 32 and section["on"] == "onnxruntime fp32"
    assert section["metrics"]["crystals"]["recall"] >= 0.95
    assert section["metrics"]["nll"]["calibrated"] <= section["metrics"]["nll"]["model"] + 1e-9
    b = Bundle.open(bundle)
    assert b.confidence().fitted
    assert b.runtime_fingerprint("onnxruntime", "fp32") != before  # a refit rescores

    scored = _cli("score", str(bundle), str(plate), "--backend", "onnxruntime", "--threads", "1")
    assert scored.returncode == 0, scored.stderr
    conf = b.confidence()
    # The model's own scores, straight from ONNX Runtime, for the same crops.
    from edgecrystal.session import open_pipeline

    with open_pipeline(b, backend="onnxruntime", precision="fp32", threads=1) as pipeline:
        direct = {r.path.name: r for r in pipeline.score(sorted(plate.glob("*.jpg")))}
    for image in sorted(plate.glob("*.jpg")):
        rec = load_result(result_path(image))
        assert rec is not None and rec["status"] == "ok"
        model = np.array([[direct[image.name].model_scores[c] for c in b.classes]])
        want = confidence.calibrate(model, conf.temperature)[0]
        np.testing.assert_allclose([rec["scores"][c] for c in b.classes], want, atol=2e-6)
        assert rec["crystals_hit"] == bool(rec["scores"]["crystals"] >= conf.crystals_threshold
                                           or rec["label"] == "crystals")
        assert rec["uncertain"] == confidence.uncertain(list(rec["scores"].values()))
        assert rec["model"]["confidence"]["temperature"] == pytest.approx(conf.temperature)
    hits = sum(bool(load_result(result_path(p))["crystals_hit"]) for p in plate.glob("*.jpg"))
    unsure = sum(bool(load_result(result_path(p))["uncertain"]) for p in plate.glob("*.jpg"))
    assert f"crystals hits{hits:>9}" in scored.stdout
    assert f"uncertain{unsure:>13}" in scored.stdout
    with (plate / SUMMARY_NAME).open() as f:
        rows = list(csv.DictReader(f))
    assert {r["crystals_hit"] for r in rows} <= {"0", "1"}
    assert all(r["crystals_hit"] == str(int(load_result(result_path(plate / r["image"]))
                                            ["crystals_hit"])) for r in rows)


def test_confidence_fitted_on_another_classifier_is_not_applied(tmp_path: Path) -> None:
    from tiny_onnx_bundle import build_tiny_bundle, retrain

    bundle = Bundle.open(build_tiny_bundle(tmp_path / "b"))
    bundle.meta["confidence"] = {"temperature": 2.0, "crystals_threshold": 0.1,
                                 "classifier_fp32_sha256":
                                 bundle.variant("classifier", "fp32")["sha256"]}
    assert bundle.confidence() == confidence.Confidence(2.0, 0.1, fitted=True)
    retrain(bundle, seed=5)  # a new classifier and FP32: the old fit says nothing about it
    assert not Bundle.open(bundle.root).confidence().fitted


def test_fit_refuses_labels_outside_the_bundle_in_one_line(fast_bundle: Path,
                                                          tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(fast_bundle, bundle)
    data = tmp_path / "data"
    for label in ("crystals", "skins"):
        write_image(data / label / "A01_1.jpg")
    done = _cli("bundle", "fit-confidence", str(bundle), "--data", str(data))
    assert done.returncode != 0
    assert "skins" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "confidence" not in json.loads((bundle / "bundle.json").read_text())


# ------------------------------------------------------------------ the index and the hit list
def test_index_migrates_0001_to_0002_and_the_hit_list_uses_crystals_hit(tmp_path: Path) -> None:
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from edgecrystal.index.store import MIGRATIONS

    url = f"sqlite:///{tmp_path}/index.db"
    old = Index(url)  # a database an older edgecrystal made: revision 0001, one row
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.execute(sa.text(
            "INSERT INTO images (path, plate, name_layout, name_understood, status, "
            "indexed_at) VALUES ('/old/A01_1.jpg', 'old', 'x', 1, 'ok', '2026-12-01')"))
    old.close()

    root = tmp_path / "plates"
    # The model's label is precipitate, but its crystals score passed the bundle's threshold.
    write_result_for(write_image(root / "p1" / "A01_1.jpg"), "precipitate", crystals=0.3,
                     crystals_hit=True)
    write_result_for(write_image(root / "p1" / "A02_1.jpg", seed=1), "crystals", crystals=0.9,
                     crystals_hit=True)
    write_result_for(write_image(root / "p1" / "A03_1.jpg", seed=2), "clear", crystals=0.05,
                     crystals_hit=False)
    with Index.open(url) as index:
        assert index.revision() == "0003"
        sync(index, root, NameReader())
        hits = index.crystal_hits()
        assert [Path(h["path"]).name for h in hits] == ["A02_1.jpg", "A01_1.jpg"]
        assert index.plates()[-1]["crystal_wells"] == 2
        # A person's word wins both ways.
        index.set_human_label(hits[0]["id"], "other", "ana")
        clear = next(r for r in index.plate_wells("p1") if r["well"] == "A03")
        index.set_human_label(clear["id"], "crystals", "ana")
        assert sorted(Path(h["path"]).name for h in index.crystal_hits()) == [
            "A01_1.jpg", "A03_1.jpg"]
        old_row = index.history("old")[0]
        assert old_row["crystals_hit"] is None and old_row["uncertain"] is None


def test_uncertain_queue_is_least_sure_first_and_skips_labelled(tmp_path: Path) -> None:
    root = tmp_path / "plates"
    write_result_for(write_image(root / "q" / "A01_1.jpg"), "clear", crystals=0.45,
                     uncertain=True)
    write_result_for(write_image(root / "q" / "A02_1.jpg", seed=1), "clear", crystals=0.3,
                     uncertain=True)
    write_result_for(write_image(root / "q" / "A03_1.jpg", seed=2), "clear", crystals=0.01,
                     uncertain=False)
    with Index.open(f"sqlite:///{tmp_path}/index.db") as index:
        sync(index, root, NameReader())
        queue = index.uncertain_queue()
        assert [r["well"] for r in queue] == ["A01", "A02"]  # top score 0.4675 before 0.595
        assert [r["well"] for r in index.uncertain_queue(after=queue[0]["id"])] == ["A02"]
        index.set_human_label(queue[0]["id"], "clear", "ana")
        assert [r["well"] for r in index.uncertain_queue()] == ["A02"]

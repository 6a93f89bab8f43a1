"""The few-label loop end to end with real processes (issue 22 item 6): a daemon scores a plate
into the index -> a person relabels drops through the review page's API -> `index
export-labels` -> `train classifier --init` the bundle that scored them -> the daemon's config
names the new bundle and a SIGHUP swaps to it -> the relabelled wells are scored again by it.
A MobileNetV3-Small classifier at 64 px, one epoch each (its ONNX export is quick, unlike
Inception-V3's): plumbing, not accuracy."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from test_daemon import ServeProcess, load, wait_results, write_config

from edgecrystal.index.store import Index
from edgecrystal.ui.app import create_app

TOKEN = "loop-token"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_score_relabel_export_finetune_swap_rescore(tmp_path: Path) -> None:
    from edgecrystal.synth import generate_dataset, make_plate

    # The bundle that scores first: the shipped finder and a classifier trained on synthetic
    # wells; training ends by exporting its FP32 ONNX (the confidence fit's first step).
    data = tmp_path / "synthetic"
    generate_dataset(data, 16, seed=3, size=96, workers=1)
    first = tmp_path / "bundle-1"
    trained = _cli("train", "classifier", str(data), "--bundle", str(first), "--profile", "tiny",
                   "--set", "backbone=mobilenet_v3_small", "--input-size", "64", "--epochs", "1")
    assert trained.returncode == 0, trained.stderr
    plate = tmp_path / "imager" / "loopplate"
    images = make_plate(plate, seed=17, width=128, height=96, count=12, workers=1)
    url = f"sqlite:///{tmp_path}/index.db"
    config = write_config(tmp_path / "serve.toml", first, tmp_path / "imager", index=url)
    daemon = ServeProcess(tmp_path, config)
    try:
        wait_results(images, 60, daemon)
        before = {p.name: load(p) for p in images}
        assert all(r["model"]["bundle"] == str(first.resolve()) for r in before.values())

        # A person relabels every drop through the page's API (truth: synth's truth.csv).
        truth = dict(line.split(",")[:2] for line in
                     (plate / "truth.csv").read_text().splitlines()[1:])
        with Index.open(url) as index:
            daemon.wait_until(lambda: index.count() == len(images), 30)
            api = TestClient(create_app(index, TOKEN), base_url="http://127.0.0.1:8765")
            for row in api.get("/api/plates/loopplate").json()["wells"]:
                done = api.post(f"/api/images/{row['id']}/label",
                                json={"label": truth[row["name"]], "who": "loop"},
                                headers={"Authorization": f"Bearer {TOKEN}"})
                assert done.status_code == 200, done.text

        labels = tmp_path / "labels"
        exported = _cli("index", "export-labels", str(labels), "--index", url)
        assert exported.returncode == 0, exported.stderr
        assert len((labels / "labels.csv").read_text().splitlines()) == len(images) + 1

        second = tmp_path / "bundle-2"
        tuned = _cli("train", "classifier", str(labels), "--bundle", str(second), "--init",
                     str(first), "--epochs", "1", "--batch-size", "4",
                     "--set", "synthetic_wells=8")  # the mix, small: this tests the loop
        assert tuned.returncode == 0, tuned.stderr
        meta = json.loads((second / "bundle.json").read_text())
        assert meta["classifier"]["init"] == str(first)
        assert meta["onnx"]["classifier"]["fp32"]["sha256"] != json.loads(
            (first / "bundle.json").read_text())["onnx"]["classifier"]["fp32"]["sha256"]

        write_config(config, second, tmp_path / "imager", index=url)
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_log("reloaded", 60)
        daemon.wait_until(lambda: all(load(p)["model"]["bundle"] == str(second.resolve())
                                      for p in images), 90)
        after = {p.name: load(p) for p in images}
        assert all(a["model"]["fingerprint"] != before[n]["model"]["fingerprint"]
                   for n, a in after.items())
        assert any(a["scores"] != before[n]["scores"] for n, a in after.items())
        assert all(isinstance(a["crystals_hit"], bool) and isinstance(a["uncertain"], bool)
                   for a in after.values())
        new_print = after[images[0].name]["model"]["fingerprint"]
        with Index.open(url) as index:  # the index follows (written after the files, by the
            # daemon's background writer); the people's labels stay
            daemon.wait_until(lambda: {r["fingerprint"] for r in
                                       index.plate_wells("loopplate")} == {new_print}, 30)
            rows = index.plate_wells("loopplate")
            assert all(r["human_label"] == truth[Path(r["path"]).name] for r in rows)
    finally:
        assert daemon.stop() == 0

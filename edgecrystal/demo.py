"""`edgecrystal demo`: the whole chain on the embedded synthetic default, in minutes on a CPU.

synthesize -> the shipped finder -> train classifier (on its crops) -> evaluate on held-out wells
-> ONNX FP32/FP16/INT8 (calibrated) and engines where there is a GPU -> a 96-well plate scored by
the daemon itself (`edgecrystal serve --once` in its own process, which never loads TensorFlow)
-> a bench summary. Everything lands in one work folder; the last lines say where and what next.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .errors import EdgeCrystalError, UsageError

MARKER = ".edgecrystal-demo"
# Sizes that train in a few minutes on 2 CPU cores and still learn the task: the shipped finder
# (edgecrystal models list) and MobileNetV3-Small (the `edge` profile's backbone) on 96 px
# crops. Inception-V3 from random initialisation stayed near chance in the demo's budget
# (held-out macro AUC 0.63 after 14 epochs); MobileNetV3-Small costs ~1/37 of its FLOPs per
# crop, so it gets more epochs on more of the wells in less time (docs/training.md, "The demo's
# classifier").
CLASSIFIER_BACKBONE = "mobilenet_v3_small"
CLASSIFIER_OVERRIDES = {"backbone": CLASSIFIER_BACKBONE, "input_size": 96, "epochs": 36,
                        "batch_size": 32, "lr": 1e-3, "val_fraction": 0.1}
SYNTH_SIZE = 256
TEST_IMAGES = 96
CALIBRATION_IMAGES = 64


def run_demo(workdir: Path, n_images: int = 600, seed: int = 0, force: bool = False) -> None:
    workdir = _prepare(workdir, force)
    steps = _Steps(8)
    started = time.perf_counter()

    from .synth import generate_dataset, make_plate

    data, test, bundle = workdir / "data", workdir / "test", workdir / "bundle"
    with steps.run(f"synthesize {n_images} training and {TEST_IMAGES} held-out wells"):
        generate_dataset(data, n_images, seed=seed, size=SYNTH_SIZE, progress=True)
        generate_dataset(test, TEST_IMAGES, seed=seed + 1, size=SYNTH_SIZE, progress=True)

    from .bundle import Bundle
    from .pretrained import adopt_finder
    from .train import train_classifier

    with steps.run("take the shipped U-Net finder (edgecrystal models list)"):
        finder = {"adopted_from": adopt_finder(Bundle.open(bundle, create=True))}
    with steps.run("train the MobileNetV3-Small classifier on finder crops"):
        classifier = train_classifier(data, bundle, crop="finder", profile="tiny",
                                      overrides=CLASSIFIER_OVERRIDES, verbose=2)

    from .evaluate import evaluate

    with steps.run("evaluate on the held-out wells"):
        evaluation = evaluate(test, bundle, workdir / "evaluation")

    from edgecrystal.converters.build import Options, build_engines

    with steps.run("export ONNX, make FP16, calibrate INT8, build engines where there is a GPU"):
        report = build_engines(bundle, Options(calib=data, calib_count=CALIBRATION_IMAGES),
                               log=lambda m: print(f"    {m}", flush=True))
        print(f"    {report.engines}", flush=True)

    plate = workdir / "plate"
    with steps.run("score a 96-well plate with the daemon (serve --once)"):
        make_plate(plate, seed=seed + 2)
        config = _write_config(workdir, bundle, plate)
        _serve_once(config)

    with steps.run("bench: Keras reference vs ONNX Runtime FP32 and INT8"):
        bench_table = _bench(bundle, workdir / "bench")

    _final_words(workdir, bundle, plate, config, finder, classifier, evaluation, bench_table,
                 time.perf_counter() - started)


class _Steps:
    """Numbered steps with their duration: the demo's progress as a person reads it."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    def run(self, title: str) -> _Step:
        self.done += 1
        return _Step(f"[{self.done}/{self.total}] {title}")


class _Step:
    def __init__(self, title: str) -> None:
        self.title = title

    def __enter__(self) -> None:
        print(f"\n{self.title} ...", flush=True)
        self.t0 = time.perf_counter()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            print(f"    done in {time.perf_counter() - self.t0:.0f} s", flush=True)


def _prepare(workdir: Path, force: bool) -> Path:
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file, not a folder")
    if workdir.is_dir() and any(workdir.iterdir()):
        if not (workdir / MARKER).is_file():
            raise UsageError(f"--workdir {workdir} is not empty and holds no earlier demo; "
                             "choose another folder")
        if not force:
            raise UsageError(f"--workdir {workdir} holds an earlier demo; add --force to "
                             "start again")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by edgecrystal demo\n")
    return workdir


def _write_config(workdir: Path, bundle: Path, plate: Path) -> Path:
    config = workdir / "serve.toml"
    config.write_text(
        "# Written by `edgecrystal demo`; every key is documented in docs/daemon.md.\n"
        f"bundle = {json.dumps(str(bundle.resolve()))}\n"
        f"watch = [{json.dumps(str(plate.resolve()))}]\n"
        'backend = "auto"\n'
        "# auto: INT8 where build-engines' accuracy gate passed on this kind of CPU and it is\n"
        "# faster here, else FP32; the daemon logs which and why.\n"
        'precision = "auto"\n'
        "overlay = true\n"
        "# The results index (docs/review.md): `edgecrystal ui --index` shows it.\n"
        f"index = {json.dumps('sqlite:///' + str((workdir / 'results.db').resolve()))}\n",
        encoding="utf-8",
    )
    return config


def _serve_once(config: Path) -> None:
    """The daemon in its own process, as systemd would run it (minus the watching)."""
    cmd = [sys.executable, "-m", "edgecrystal", "serve", "--config", str(config), "--once"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = done.stderr.strip().splitlines()
    for line in lines[:3] + (["    ..."] if len(lines) > 6 else []) + lines[-3:]:
        print(f"    {line}", flush=True)
    if done.returncode != 0:
        raise EdgeCrystalError(f"edgecrystal serve --once exited {done.returncode}: "
                               f"{lines[-1] if lines else 'no output'}")


def _bench(bundle: Path, out: Path) -> str:
    from .atomic import write_json
    from .bench.report import format_table, plot
    from .bench.run import BenchConfig, measure

    out.mkdir(parents=True, exist_ok=True)
    cfg = BenchConfig(backends=("keras", "onnxruntime", "tensorrt"), precisions=("fp32", "int8"),
                      batch=1, iterations=15, warmup=2, synthetic=8)
    report, runs = measure(bundle, cfg, log=lambda m: print(f"    {m}", flush=True))
    write_json(out / "bench.json", report)
    plot(report, runs, out / "bench.png")
    table = format_table(report)
    (out / "bench.txt").write_text(table + "\n", encoding="utf-8")
    return table.split("\n\n")[-1]  # the comparison block


def _final_words(workdir: Path, bundle: Path, plate: Path, config: Path, finder: dict,
                 classifier: dict, evaluation: dict, bench_table: str, seconds: float) -> None:
    labels: Counter[str] = Counter()
    for result in plate.glob("*.edgecrystal.json"):
        record = json.loads(result.read_text(encoding="utf-8"))
        labels[record.get("label") or record.get("status", "?")] += 1
    fnd = evaluation.get("finder", {})
    cls = evaluation.get("classifier", {})
    auc = cls.get("roc_auc", {}).get("macro")
    w = workdir
    print(f"""
edgecrystal demo finished in {seconds / 60:.1f} min. Everything is in {w}/

  data/, test/            synthetic training and held-out wells (images, masks, labels.csv)
  bundle/                 the model bundle: bundle.json, finder.keras, classifier.keras,
                          onnx/ (fp32, fp16, int8), calibration/, engines/ (with a GPU)
  evaluation/             report.md, report.json, ROC curves and confusion matrix (PNG)
  plate/                  96 wells scored by the daemon: A01_1.jpg.edgecrystal.json (+ .png
                          overlay) beside each image, edgecrystal-summary.csv
  bench/                  bench.txt, bench.json, bench.png
  serve.toml              the daemon config the plate was scored with
  results.db              the results index the daemon fed (plates, wells, history)

Held-out wells: finder Dice {_fmt(fnd.get('dice_mean'))}, IoU {_fmt(fnd.get('iou_mean'))}; \
classifier macro AUC {_fmt(auc)}, accuracy {_fmt(cls.get('accuracy'))}
Plate labels: {dict(labels)}
{bench_table}

Next:
  edgecrystal serve --config {config}          # watch the plate folder (drop new images in)
  edgecrystal bench {bundle} --images {plate}  # latency on your machine
  edgecrystal ui --index sqlite:///{w}/results.db   # review page: http://127.0.0.1:8765/
  edgecrystal evaluate YOUR_MASKED_PHOTOS --out eval   # the shipped finder on your imager
  edgecrystal train finder YOUR_DATA --bundle my-bundle --init default   # fine-tune it
      # then train classifier, build-engines, serve
  (see README.md and docs/)""", flush=True)


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "n/a"

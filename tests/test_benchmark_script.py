"""scripts/benchmark.py: docs/benchmarks.md rendered from a saved benchmarks.json, and the
archive part run for real on a small archive.

The saved parts are made the way the script makes them: the pipeline part by the bench report's
own build_report on known timings, the verify part by a real `verify` of the TF-free fast
bundle; the page is rendered by the script in a subprocess, as a user runs it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from edgecrystal.bench import machine
from edgecrystal.bench.report import RunTimings, build_report

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "benchmark.py"


def _markdown_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "benchmark_markdown", REPO / "scripts" / "benchmark_markdown.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _timings(backend: str, precision: str, e2e_ms: float) -> RunTimings:
    count = 24
    stages = {"read": [3.0] * count, "finder": [e2e_ms * 0.5] * count,
              "crop": [2.0] * count, "classifier": [e2e_ms * 0.2] * count,
              "write": [1.0] * count}
    return RunTimings(backend, precision, 1, wall_s=count * e2e_ms / 1000, stages_ms=stages,
                      end_to_end_ms=[e2e_ms] * count, flops={"finder": 6_000_000_000})


def _pipeline(keras: float, fp32: float, int8: float) -> dict[str, Any]:
    runs = [_timings("keras", "fp32", keras), _timings("onnxruntime", "fp32", fp32),
            _timings("onnxruntime", "int8", int8)]
    config = {"images": "24 synthetic 1280x960 JPEG wells", "skipped": [], "iterations": 24,
              "warmup": 5}
    return build_report(runs, machine=machine.describe(), peak_gflops=200.0, config=config)


def _render(tmp_path: Path, saved: dict[str, Any]) -> str:
    saved_path = tmp_path / "saved.json"
    saved_path.write_text(json.dumps(saved))
    out = tmp_path / "out"
    out.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), "--render", str(saved_path),
                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return (out / "benchmarks.md").read_text()


def _verify_without_keras(fast_bundle: Path, tmp_path: Path, data: Path) -> dict[str, Any]:
    """`verify` of the fast bundle, whose models have no Keras files: recorded as imported
    models (ONNX only), verify takes ONNX FP32 as the reference, as it does for such bundles."""
    from edgecrystal.bundle import Bundle
    from edgecrystal.converters.verify import run_verify

    root = tmp_path / "bundle"
    shutil.copytree(fast_bundle, root)
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        bundle.section(model)["imported"] = {"format": "onnx"}  # provenance, as import records it
    bundle.save()
    return run_verify(root, data, 8)


def _stamp(part: dict[str, Any]) -> dict[str, Any]:
    return {**part, "measured": "2026-11-26T16:00:00+00:00", "load": 1.5}


def test_headline_checks_rendered_from_a_saved_run(
        tmp_path: Path, fast_bundle: Path, fast_calibration_data: Path) -> None:
    verify = _verify_without_keras(fast_bundle, tmp_path, fast_calibration_data)
    variants = verify["models"]["finder"]["variants"]
    # ONNX Runtime runs the int8-u8 variant where build-engines made one.
    runtime_int8 = "onnx-int8-u8" if "onnx-int8-u8" in variants else "onnx-int8"
    dice_loss = variants["onnx-fp32"]["dice"] - variants[runtime_int8]["dice"]
    saved = {
        "profiles": {
            "lite": {"what": "lite, untrained",
                     "pipeline": _stamp(_pipeline(keras=400.0, fp32=80.0, int8=30.0)),
                     "plate": _stamp({"runs": {"int8": {"images": 96, "wall_s": 4.3,
                                                        "summary": "96 scored in 4.0 s"}}}),
                     "verify": _stamp({"data": "8 synthetic wells", "result": verify})},
            "paper": {"what": "paper, untrained",
                      "pipeline": _stamp(_pipeline(keras=9000.0, fp32=2500.0, int8=1500.0))},
        },
        "archive": _stamp({"images": 500, "precision": "int8", "source": "320x240 JPEGs",
                           "runs": [{"how": "1 process", "wall_s": 20.0, "results": 500,
                                     "summary": "500 scored in 19.0 s"},
                                    {"how": "local Ray", "skipped": "Ray is not installed"}]}),
    }
    page = _render(tmp_path, saved)

    assert "| INT8 pipeline vs the Keras reference (p50) | >= 12x | 13.33x | met |" in page
    assert ("| INT8 pipeline vs ONNX Runtime FP32 of the same models (p50) | >= 2.2x | "
            "2.67x | met |") in page
    assert "| INT8 pipeline p50 per image (quiet machine) | <= 30 ms | 30.0 ms | met |" in page
    met = "met" if dice_loss <= 0.005 else "**not met**"
    assert (f"| Dice loss, finder ONNX INT8 vs FP32 (`verify`) | <= 0.005 | {dice_loss:+.4f} "
            f"| {met} |") in page
    ranks = verify["models"]["classifier"]["variants"][runtime_int8].get("rank_correlation")
    rank_cell = (f"{min(ranks.values()):.4f} | met" if ranks else "- | not measured")
    assert f"lowest over classes (`verify`) | reported | {rank_cell} |" in page
    assert "## Profile `paper`: paper, untrained" in page
    assert "| onnxruntime | int8 | 1500.0 |" in page  # the paper profile's own table
    assert "| 1 process | 20.0 | 25.0 | 500 | 500 scored in 19.0 s |" in page
    assert "| local Ray | - | - | - | skipped: Ray is not installed |" in page
    assert "pipeline (lite) 2026-11-26T16:00:00+00:00 (load average 1.5)" in page
    assert "| int8 | 4.3 | 96 scored in 4.0 s |" in page


def test_a_target_missed_is_marked(tmp_path: Path) -> None:
    saved = {"profiles": {"lite": {"what": "lite",
                                   "pipeline": _stamp(_pipeline(keras=400.0, fp32=80.0,
                                                                int8=52.5))}}}
    page = _render(tmp_path, saved)
    assert "| >= 12x | 7.62x | **not met** |" in page
    assert "| >= 2.2x | 1.52x | **not met** |" in page
    assert "| <= 30 ms | 52.5 ms | **not met** |" in page
    assert "Dice, AUC and the rank correlation: not measured in this run" in page


def test_the_first_layout_still_renders(tmp_path: Path) -> None:
    """docs/benchmarks.json as the first version of the script saved it (lite only)."""
    old = json.loads((REPO / "docs" / "benchmarks.json").read_text())
    markdown = _markdown_module()
    saved = markdown.upgrade(old)
    lite = saved["profiles"]["lite"]
    keras = markdown._p50(lite["pipeline"], "keras", "fp32")
    int8 = markdown._p50(lite["pipeline"], "onnxruntime", "int8")
    page = _render(tmp_path, old)
    assert f"| INT8 pipeline vs the Keras reference (p50) | >= 12x | {keras / int8:.2f}x |" in page
    assert "## The daemon" in page


@pytest.mark.parametrize("option", [["--parts", "pipeline,nonsense"], ["--profiles", "huge"],
                                    ["--archive-images", "0"], ["--archive-size", "320x"],
                                    ["--archive-ways", "3"]])
def test_bad_options_are_refused(option: list[str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), *option], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "error:" in done.stderr.strip().splitlines()[-1]


def test_the_lowest_rank_correlation_over_classes() -> None:
    markdown = _markdown_module()
    row = {"rank_correlation": {"clear": 0.999, "crystals": 0.981, "other": float("nan")}}
    assert markdown.lowest_rank_correlation(row) == 0.981
    assert markdown.lowest_rank_correlation({}) is None


@pytest.mark.slow  # three `score` runs, one of them on a Ray instance it starts
def test_the_archive_part_scores_every_image_and_leaves_only_the_images(
        tmp_path: Path, fast_bundle: Path) -> None:
    """The archive part for real, small: a 12-image archive re-scored by `score` in one
    process with the fast bundle; its figures land in the JSON and the page, and the cached
    archive is left as it was made (results cleared) for the next run."""
    bundle = tmp_path / "bundle"
    shutil.copytree(fast_bundle, bundle)
    out, cache = tmp_path / "out", tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--parts", "archive", "--profiles", "lite",
         "--bundle", str(bundle), "--archive-images", "12", "--archive-size", "96x72",
         "--archive-ways", "1", "--cache", str(cache), "--out", str(out)],
        capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    archive = json.loads((out / "benchmarks.json").read_text())["archive"]
    (run,) = archive["runs"]
    assert run["results"] == 12 and run["summary"].startswith("12 scored")
    folder = cache / "archive-96x72-12"
    left = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert left == [".complete"] + [f"plate-00000/well-{i:02d}.jpg" for i in range(12)]
    page = (out / "benchmarks.md").read_text()
    assert "## Re-scoring an archive of 12 images" in page


def test_a_soak_report_is_added_to_the_page_with_its_rss_verdict(tmp_path: Path) -> None:
    """`edgecrystal soak`'s own summary of its samples (RSS rising 2 MiB a minute after
    warm-up), merged by `benchmark.py --soak` into benchmarks.json and rendered."""
    from edgecrystal.bench import soak

    rows = [{"t_s": 60.0 * minute, "rss_mib": 300.0 + 2.0 * minute, "fds": 13, "threads": 14,
             "closed": 120, "results": 120, "backlog": 0,
             "trickle": {"n": 120, "p50_ms": 80.0 + minute, "p95_ms": 150.0},
             "burst": ({"n": 200, "p50_ms": 4000.0, "p95_ms": 6000.0} if minute == 2 else
                       {"n": 0, "p50_ms": None, "p95_ms": None})} for minute in range(31)]
    summary = soak.summarise(rows, 120.0)
    assert summary["rss_mib"]["slope_mib_per_min"] == pytest.approx(2.0)
    report = {"minutes": 30.0, "backend": "onnxruntime", "precision": "int8",
              "image_size": "640x480", "trickle_s": 0.5, "burst": 200, "burst_every_s": 120.0,
              "images": 6600, "unscored_at_end": 0, "sigterm_exit": 0, "load_avg": [1.0, 1.2, 1.1],
              "samples": rows, "summary": summary}
    (tmp_path / "soak.json").write_text(json.dumps(report))
    out = tmp_path / "out"
    out.mkdir()
    shutil.copy(REPO / "docs" / "benchmarks.json", out / "benchmarks.json")
    done = subprocess.run([sys.executable, str(SCRIPT), "--soak", str(tmp_path / "soak.json"),
                           "--out", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = (out / "benchmarks.md").read_text()
    assert "## Soak (`edgecrystal soak`, 30 min, onnxruntime int8, lite)" in page
    assert "RSS 304 to 360 MiB (first 304, last 360; fitted slope +2.00 MiB/min)" in page
    # 31 samples in rows of two: the first row ends at minute 1, the second holds the burst.
    assert "| 60 | 302 | 13 | 14 | 81 / 150 | - |" in page
    assert "| 180 | 306 | 13 | 14 | 83 / 150 | 4000 / 6000 |" in page
    assert "## The daemon" in page  # what was there before is kept
    assert json.loads((out / "benchmarks.json").read_text())["soak"]["images"] == 6600

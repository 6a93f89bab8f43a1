"""`edgecrystal bench` end to end on a real bundle, and the demo's refusals (bad input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgecrystal.bench.report import SCHEMA, STAGES


def _edgecrystal(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.mark.slow
def test_bench_report_has_every_field(onnx_bundle: Path, tmp_path: Path) -> None:
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    done = _edgecrystal("bench", str(onnx_bundle), "--backend", "keras,onnxruntime,tensorrt",
                        "--precision", "fp32,int8", "--iterations", "6", "--warmup", "1",
                        "--count", "3", "--json", str(out), "--plot", str(png))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["schema"] == SCHEMA
    assert report["machine"]["cpu_count"] >= 1 and "onnxruntime" in report["machine"]["libraries"]
    assert report["peak_gflops_fp32"] > 0
    runs = {(r["backend"], r["precision"]): r for r in report["runs"]}
    assert set(runs) == {("keras", "fp32"), ("onnxruntime", "fp32")}
    # The bundle has no INT8 variant and this machine no TensorRT: both are said, not hidden.
    skipped = " ".join(report["config"]["skipped"])
    assert "onnxruntime/int8" in skipped and "tensorrt/fp32" in skipped
    ort = runs[("onnxruntime", "fp32")]
    assert ort["images"] == 6 and ort["throughput_ips"] > 0
    # This bundle has no crystal model: its stage is absent, not a made-up zero.
    assert "crystals" not in ort["latency_ms"] and ort["crystals_cost"] is None
    for stage in ("end_to_end", *(s for s in STAGES if s != "crystals")):
        s = ort["latency_ms"][stage]
        assert s["min"] <= s["median"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]
    assert runs[("keras", "fp32")]["ratio_vs_baseline"] == pytest.approx(1.0)
    assert ort["ratio_vs_baseline"] > 0
    assert ort["flops_per_image"]["total"] > 0 and ort["floor_ms"] > 0
    assert "Performance summary: onnxruntime fp32" in done.stdout
    assert png.stat().st_size > 1000


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_bench_of_onnx_precisions_without_keras(fast_bundle: Path, tmp_path: Path) -> None:
    from edgecrystal.runtime.advice import INT8_AT_MOST

    out = tmp_path / "bench.json"
    done = _edgecrystal("bench", str(fast_bundle), "--backend", "onnxruntime,tensorrt",
                        "--precision", "fp32,int8", "--iterations", "4", "--warmup", "1",
                        "--count", "2", "--json", str(out))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    runs = {(r["backend"], r["precision"]): r for r in report["runs"]}
    assert set(runs) == {("onnxruntime", "fp32"), ("onnxruntime", "int8")}
    assert report["baseline"] is None  # no Keras run: no ratio is made up
    assert "tensorrt/fp32" in " ".join(report["config"]["skipped"])
    for run in runs.values():
        assert run["images"] == 4 and run["throughput_ips"] > 0
        assert run["ratio_vs_baseline"] is None
        s = run["latency_ms"]["end_to_end"]
        assert s["min"] <= s["median"] <= s["max"]
    # The advice follows the rule on the two runs' medians (runtime/advice.py).
    advice = report["advice"]
    medians = {p: runs[("onnxruntime", p)]["latency_ms"]["end_to_end"]["median"]
               for p in ("fp32", "int8")}
    faster = medians["int8"] <= INT8_AT_MOST * medians["fp32"]
    assert advice["precision"] == ("int8" if faster else "fp32"), advice
    assert f"should run {advice['precision']}: " in done.stdout


def test_bench_on_real_images(fast_bundle: Path, real_samples: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in (real_samples / "marco-gsk").iterdir())
    out = tmp_path / "b.json"
    done = _edgecrystal("bench", str(fast_bundle), "--backend", "onnxruntime", "--precision",
                        "fp32", "--iterations", "4", "--warmup", "0", "--count", "4",
                        "--images", str(real_samples / "marco-gsk"), "--json", str(out))
    assert done.returncode == 0, done.stderr
    assert "4 images from" in json.loads(out.read_text())["config"]["images"]
    # Nothing is written beside the user's images.
    assert sorted(p.name for p in (real_samples / "marco-gsk").iterdir()) == before


def test_bench_bad_input_is_one_line(fast_bundle: Path, tmp_path: Path) -> None:
    for args in (["bench", str(tmp_path / "nope")],
                 ["bench", str(fast_bundle), "--backend", "cuda-magic"],
                 ["bench", str(fast_bundle), "--images", str(tmp_path / "missing")]):
        done = _edgecrystal(*args, timeout=120)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("edgecrystal: error:"), done.stderr


def test_bench_with_no_readable_image_is_one_line(fast_bundle: Path, tmp_path: Path) -> None:
    """Images that all fail to decode made `bench` end in "internal error: no timings"."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "A01_1.jpg").write_text("not a picture")
    (folder / "A02_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 10)
    done = _edgecrystal("bench", str(fast_bundle), "--backend", "onnxruntime", "--precision",
                        "fp32", "--iterations", "2", "--warmup", "0", "--images", str(folder),
                        timeout=120)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("edgecrystal: error: --images") and "internal error" not in last
    assert "none of its 2 images could be read" in last and "A01_1.jpg" in last


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    done = _edgecrystal("demo", "--workdir", str(tmp_path), timeout=120)
    assert done.returncode == 2
    assert "not empty" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    a_file = tmp_path / "file"
    a_file.write_text("x")
    done = _edgecrystal("demo", "--workdir", str(a_file), timeout=120)
    assert done.returncode == 2 and "is a file" in done.stderr


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_bench_of_the_runtime_backends_never_loads_tensorflow(fast_bundle: Path) -> None:
    code = (
        "import sys\n"
        "from edgecrystal.cli import main\n"
        "try:\n"
        f"    main(['bench', {str(fast_bundle)!r}, '--backend', 'onnxruntime,tensorrt',\n"
        "          '--iterations', '2', '--warmup', '0', '--count', '2'])\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = sorted(m for m in sys.modules\n"
        "               if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'onnx'))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout[-500:]

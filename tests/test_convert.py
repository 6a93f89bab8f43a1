"""ONNX precision variants, INT8 calibration, hash-keyed build-engines, engine manifests,
and one-line CLI errors. TensorRT parts are marked gpu and skip without TensorRT + GPU."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from edgecrystal.bundle import Bundle
from edgecrystal.converters.build import Options, build_engines
from edgecrystal.engines import manifest
from edgecrystal.interface import INPUT_NAME

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def calib_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecrystal.synth.generate import generate_dataset

    out = tmp_path_factory.mktemp("calib") / "data"
    generate_dataset(out, 8, seed=3, size=96)
    return out


@pytest.fixture(scope="module")
def built(onnx_bundle: Path, calib_data: Path,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("built") / "bundle"
    shutil.copytree(onnx_bundle, root)
    report = build_engines(root, Options(calib=calib_data, calib_count=8))
    return root, report


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {INPUT_NAME: x})[0]


def _inputs(bundle: Bundle, model: str, n: int = 3) -> np.ndarray:
    size = bundle.meta[model]["input_size"]
    return np.random.default_rng(5).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.slow
def test_variants_registered_and_close_to_fp32(built: tuple[Path, object]) -> None:
    root, report = built
    bundle = Bundle.open(root)
    assert {s["precision"] for s in report.steps} == {"fp32", "fp16", "int8"}
    assert "NVIDIA GPU" in report.engines or "engines for" in report.engines
    for model in ("finder", "classifier"):
        x = _inputs(bundle, model)
        ref = _run(bundle.onnx_variant(model, "fp32"), x)
        fp16 = _run(bundle.onnx_variant(model, "fp16", "tensorrt"), x)
        assert fp16.dtype == np.float32
        assert np.abs(fp16 - ref).max() < 2e-2
        for backend in ("tensorrt", "onnxruntime"):
            q = _run(bundle.onnx_variant(model, "int8", backend), x)
            assert q.shape == ref.shape
            assert np.abs(q - ref).max() < 0.1
    assert bundle.verify_files() == []


@pytest.mark.slow
def test_tensorrt_int8_has_only_zero_zero_points(built: tuple[Path, object]) -> None:
    from edgecrystal.calibration.quantize import zero_points

    root, _ = built
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        zps = zero_points(bundle.onnx_variant(model, "int8", "tensorrt"))
        assert len(zps) > 10
        assert [z for z in zps if z[1] != 0] == []
    record = bundle.meta["calibration"]["classifier"]
    assert record["images"] == 8 and record["crop"] == "mask"
    cache = (root / record["trt_cache"]).read_text().splitlines()
    assert cache[0].startswith("TRT-") and ":" in cache[1]


@pytest.mark.slow
def test_rerun_rebuilds_nothing(built: tuple[Path, object], calib_data: Path) -> None:
    root, _ = built
    files = sorted((root / "onnx").glob("*.onnx"))
    before = {p: p.stat().st_mtime_ns for p in files}
    report = build_engines(root, Options(calib=calib_data, calib_count=8))
    assert report.made == []
    assert {p: p.stat().st_mtime_ns for p in files} == before
    # Without --calib the calibration record stands in for the data.
    assert build_engines(root, Options(precisions=("fp32", "int8"), calib_count=8)).made == []


def test_fast_bundle_variants_close_to_fp32_and_symmetric(fast_bundle: Path) -> None:
    """The converters' FP16 and INT8 steps on onnx.helper models (no TensorFlow)."""
    from edgecrystal.calibration.quantize import zero_points
    from edgecrystal.converters.int8_gate import s8s8_exact

    bundle = Bundle.open(fast_bundle)
    for model in ("finder", "classifier"):
        x = _inputs(bundle, model)
        ref = _run(bundle.onnx_variant(model, "fp32"), x)
        fp16 = _run(bundle.onnx_variant(model, "fp16", "tensorrt"), x)
        assert fp16.dtype == np.float32 and np.abs(fp16 - ref).max() < 2e-2
        # TensorRT's s8 x s8 file runs exactly in ONNX Runtime only where the CPU has VNNI
        # (or is ARM64): elsewhere ONNX Runtime's kernels saturate, whatever the file holds.
        for backend in ("tensorrt", "onnxruntime") if s8s8_exact() else ("onnxruntime",):
            q = _run(bundle.onnx_variant(model, "int8", backend), x)
            assert q.shape == ref.shape and np.abs(q - ref).max() < 0.1
        zps = zero_points(bundle.onnx_variant(model, "int8", "tensorrt"))
        assert zps and [z for z in zps if z[1] != 0] == []
    assert bundle.meta["calibration"]["classifier"]["images"] == 8
    assert bundle.verify_files() == []


IDENTITY = {"gpu": "Orin (nvgpu)", "compute_capability": "8.7", "tensorrt": "10.3.0",
            "cuda_driver": 12020}


def test_manifest_folder_and_mismatch_reasons(tmp_path: Path) -> None:
    assert manifest.folder_name(IDENTITY) == "orin-nvgpu-sm87-trt10.3.0"
    assert manifest.slug("NVIDIA GeForce RTX 4090") == "geforce-rtx-4090"
    data = manifest.new_manifest(IDENTITY)
    data["engines"]["finder.fp16"] = manifest.engine_entry(
        model="finder", precision="fp16", plan="finder.fp16.plan",
        source="onnx/finder.fp16.onnx", sha256_source="abc", sha256="def",
        profile={"min": [1, 64, 64, 3], "opt": [4, 64, 64, 3], "max": [16, 64, 64, 3]},
        input_dtype="uint8", options={"precision": "fp16"}, build_seconds=1.0)
    manifest.write_manifest(tmp_path, data)
    back = manifest.read_manifest(tmp_path)
    assert back["engines"]["finder.fp16"]["profile"]["max"][0] == 16
    assert manifest.check_manifest(back, IDENTITY) is None
    assert "no NVIDIA GPU" in manifest.check_manifest(back, None)
    other_trt = {**IDENTITY, "tensorrt": "8.5.2"}
    assert "TensorRT differs" in manifest.check_manifest(back, other_trt)
    other_gpu = {**IDENTITY, "gpu": "NVIDIA A100", "compute_capability": "8.0"}
    assert "GPU differs" in manifest.check_manifest(back, other_gpu)
    back["hardware_compatibility"] = "ampere+"
    assert manifest.check_manifest(back, other_gpu) is None
    turing = {**IDENTITY, "gpu": "Tesla T4", "compute_capability": "7.5"}
    assert "Ampere" in manifest.check_manifest(back, turing)
    assert manifest.check_engine(back, "finder.fp16", "abc") is None
    assert "another version" in manifest.check_engine(back, "finder.fp16", "zzz")
    assert "no classifier.int8" in manifest.check_engine(back, "classifier.int8")


def test_find_engine_names_the_reason(fast_bundle: Path) -> None:
    bundle = Bundle.open(fast_bundle)
    assert "no engines were built" in manifest.find_engine(bundle, "finder", "fp16", IDENTITY)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


@pytest.mark.slow
def test_bad_inputs_fail_in_one_line(tmp_path: Path, untrained_bundle: Path) -> None:
    empty = tmp_path / "empty"
    Bundle.open(empty, create=True).save()
    res = _cli("build-engines", str(empty))
    assert res.returncode != 0
    assert res.stderr.strip().count("\n") == 0 and "has no models" in res.stderr
    res = _cli("build-engines", str(untrained_bundle), "--precision", "int8", "--calib",
               str(tmp_path / "nowhere"))
    assert res.returncode != 0 and "does not exist" in res.stderr
    assert res.stderr.strip().count("\n") == 0
    few = tmp_path / "few"
    few.mkdir()
    (few / "labels.csv").write_text("image,mask,label\nimages/a.jpg,,clear\n")
    copy = tmp_path / "b"
    shutil.copytree(untrained_bundle, copy)
    (copy / "onnx").mkdir()
    (copy / "onnx" / "finder.fp32.onnx").write_bytes(b"not an onnx file")
    meta = Bundle.open(copy)
    meta.section("onnx")["finder"] = {"fp32": {"file": "onnx/finder.fp32.onnx"}}
    meta.save()
    res = _cli("verify", str(copy), "--data", str(few))
    assert res.returncode != 0 and res.stderr.strip().count("\n") == 0
    assert "a.jpg" in res.stderr


@pytest.mark.slow
@pytest.mark.gpu
def test_engine_builds_loads_and_matches_onnx(built: tuple[Path, object],
                                               calib_data: Path) -> None:
    identity = manifest.device_identity()
    if identity is None:
        pytest.skip("needs an NVIDIA GPU with TensorRT")
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    root, _ = built
    report = build_engines(root, Options(precisions=("fp32", "fp16"), max_batch=4,
                                         opt_batch=2, workspace_mb=256))
    bundle = Bundle.open(root)
    for model in ("finder", "classifier"):
        plan = manifest.find_engine(bundle, model, "fp16", identity)
        assert isinstance(plan, Path), plan
        x = _inputs(bundle, model)
        ref = _run(bundle.onnx_variant(model, "fp32"), x)
        with TensorRTRunner(plan) as runner:
            assert np.abs(runner.predict(x) - ref).max() < 2e-2
    assert any(s["what"] == "engine" for s in report.steps)

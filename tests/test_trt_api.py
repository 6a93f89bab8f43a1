"""Every TensorRT and CUDA path of the project, run on the CPU against fakes generated from the
real bindings of TensorRT 8.6, 10.3, 10.13 and 11.4 (tests/fakes, tests/binding_api).

These tests check the project's control flow and its use of each version's API (names,
parameters, flags that exist or not, the (err, value) convention of cuda-python), not the real
libraries: docs/conversion.md says what stays unverifiable without TensorRT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import onnx
import pytest
from fakes.cuda import FakeGpu, hide, install_cuda_python, install_pycuda
from fakes.onnx_models import classifier, expected, onnx_bundle, pixels
from fakes.tensorrt import install_tensorrt, read_plan

from edgecrystal.bundle import Bundle
from edgecrystal.engines import manifest
from edgecrystal.engines.device import probe_device
from edgecrystal.engines.store import engine_for
from edgecrystal.engines.trt_build import BuildOptions, build_plan
from edgecrystal.errors import BackendError, UsageError

pytestmark = pytest.mark.trt_api

VERSIONS = ["8.6", "10.3", "10.13", "11.4"]
# The CUDA binding each TensorRT version meets in the field: JetPack 6 (8.6, 10.3) has CUDA 12
# and cuda-python 12.x; 10.13 and 11.4 ship for CUDA 13 with drivers 580+.
BINDING = {"8.6": ("12.6", 12060), "10.3": ("12.6", 12060), "10.13": ("13.0", 13000),
           "11.4": ("13.0", 13000)}
PYCUDA = ("pycuda", "pycuda.driver", "pycuda.autoinit")


@dataclass
class Env:
    version: str
    trt: ModuleType
    gpu: FakeGpu
    monkeypatch: pytest.MonkeyPatch

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])


@pytest.fixture(params=VERSIONS, ids=VERSIONS)
def env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Env:
    binding, driver = BINDING[request.param]
    gpu = FakeGpu(driver=driver)
    trt = install_tensorrt(monkeypatch, request.param, gpu)
    install_cuda_python(monkeypatch, gpu, binding)
    hide(monkeypatch, *PYCUDA)
    return Env(request.param, trt, gpu, monkeypatch)


def _onnx(tmp_path: Path, precision: str = "fp32", **kwargs: Any) -> Path:
    path = tmp_path / f"model.{precision}.onnx"
    onnx.save(classifier(precision, **kwargs), path)
    return path


def _identity(env: Env) -> dict[str, Any]:
    identity = probe_device().identity
    assert identity is not None
    return identity


# ----------------------------------------------------------------- build_plan
@pytest.mark.parametrize("compat", [False, True], ids=["plain", "ampere-plus"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_build_plan(env: Env, tmp_path: Path, precision: str, compat: bool) -> None:
    plan = tmp_path / "model.plan"
    facts = build_plan(_onnx(tmp_path, precision), plan,
                       BuildOptions(precision=precision, hardware_compat=compat))
    header, _ = read_plan(plan.read_bytes())
    assert header["tensorrt"] == env.trt.__version__ == facts["tensorrt"]
    assert header["hardware_compat"] == ("AMPERE_PLUS" if compat else "NONE")
    assert facts["profile"] == {"min": [1, 4, 4, 3], "opt": [4, 4, 4, 3], "max": [16, 4, 4, 3]}
    assert facts["input_dtype"] == "uint8"
    # 10+: strongly typed, the ONNX states the precision and no precision flag is set;
    # 8.6: weakly typed with the flag the ONNX needs (Q/DQ needs INT8 there).
    assert facts["strongly_typed"] is (env.major >= 10) is header["strongly_typed"]
    wanted = {"fp32": set(), "fp16": {"FP16"}, "int8": {"INT8"}}[precision]
    assert set(header["flags"]) - {"TF32"} == (wanted if env.major < 10 else set())
    # Strict FP32: TF32 (on by default in every version) is cleared for an FP32 engine only.
    assert header["tf32"] is (precision != "fp32")
    assert ("-TF32" in facts["builder_flags"]) is (precision == "fp32")


def test_tf32_only_when_asked(env: Env, tmp_path: Path) -> None:
    plan = tmp_path / "model.plan"
    build_plan(_onnx(tmp_path), plan, BuildOptions(precision="fp32", tf32=True))
    assert read_plan(plan.read_bytes())[0]["tf32"] is True


def test_timing_cache_is_reused(env: Env, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    options = BuildOptions(precision="fp16")
    build_plan(_onnx(tmp_path, "fp16"), tmp_path / "a.plan", options, timing_cache=cache)
    timed = env.gpu.stats["timed"]
    assert timed > 0 and env.gpu.stats["reused"] == 0 and cache.stat().st_size > 0
    build_plan(_onnx(tmp_path, "fp16"), tmp_path / "b.plan", options, timing_cache=cache)
    assert env.gpu.stats["timed"] == timed  # nothing timed again
    assert env.gpu.stats["reused"] == timed


def test_parser_error_names_the_node(env: Env, tmp_path: Path) -> None:
    with pytest.raises(BackendError) as caught:
        build_plan(_onnx(tmp_path, unknown_op=True), tmp_path / "x.plan",
                   BuildOptions(precision="fp32"))
    message = str(caught.value)
    assert "\n" not in message and "NotARealOp" in message and "node 2" in message
    # node_name / node_operator exist from 10 on; 8.6's ParserError has node() only.
    assert ("name odd_node" in message) is (env.major >= 10)
    assert not (tmp_path / "x.plan").exists()


def test_unreadable_onnx_is_one_line(env: Env, tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07 not protobuf \xff" * 5)
    with pytest.raises(BackendError, match=r"cannot parse broken\.onnx: \[graph\]") as caught:
        build_plan(bad, tmp_path / "x.plan", BuildOptions(precision="fp32"))
    assert "\n" not in str(caught.value)


# ----------------------------------------------------------------- INT8 calibration
def test_legacy_entropy_calibrator(env: Env, tmp_path: Path) -> None:
    from edgecrystal.calibration.trt_calibrator import EntropyCalibrator

    cache = tmp_path / "legacy.cache"
    if env.major >= 11:  # removed in 11: one clear error, no calibrator object
        with pytest.raises(BackendError, match="no implicit INT8 calibrator"):
            EntropyCalibrator(pixels(20), cache)
        return
    calibrator = EntropyCalibrator(pixels(20), cache)
    assert env.gpu.live()["device"] == 1 and env.gpu.live()["streams"] == 1
    options = BuildOptions(precision="int8", legacy_int8_calibrator=calibrator)
    if env.major >= 10:  # deprecated in 10: refused before any build, and still freed
        with pytest.raises(UsageError, match="needs TensorRT < 10"):
            build_plan(_onnx(tmp_path, "fp32"), tmp_path / "x.plan", options)
    else:
        facts = build_plan(_onnx(tmp_path, "fp32"), tmp_path / "x.plan", options)
        assert facts["builder_flags"] == ["INT8"] and not facts["strongly_typed"]
        assert env.gpu.stats["calibration_batches"] == 3  # 20 images, batches of 8
        assert cache.read_text().startswith(f"TRT-{env.trt.__version__}-EntropyCalibration2")
    assert env.gpu.live() == {"device": 0, "host": 0, "streams": 0, "events": 0}


def test_legacy_calibrator_cache_skips_calibration(env: Env, tmp_path: Path) -> None:
    if env.major >= 10:
        with pytest.raises(UsageError if env.major == 10 else BackendError):
            from edgecrystal.calibration.trt_calibrator import EntropyCalibrator

            build_plan(_onnx(tmp_path), tmp_path / "x.plan", BuildOptions(
                precision="int8", legacy_int8_calibrator=EntropyCalibrator(None, tmp_path / "c")))
        return
    from edgecrystal.calibration.trt_calibrator import EntropyCalibrator

    cache = tmp_path / "legacy.cache"
    cache.write_text("TRT-8601-EntropyCalibration2\npixels: 3c010a14\n")
    build_plan(_onnx(tmp_path), tmp_path / "x.plan", BuildOptions(
        precision="int8", legacy_int8_calibrator=EntropyCalibrator(None, cache)))
    assert env.gpu.stats["calibration_batches"] == 0


def test_qdq_int8_is_strongly_typed_from_10(env: Env, tmp_path: Path) -> None:
    facts = build_plan(_onnx(tmp_path, "int8"), tmp_path / "x.plan", BuildOptions("int8"))
    if env.major >= 10:
        assert facts["strongly_typed"] and facts["builder_flags"] == []
    else:
        assert not facts["strongly_typed"] and facts["builder_flags"] == ["INT8"]


# ----------------------------------------------------------------- the runner
def _engine(env: Env, tmp_path: Path, precision: str = "fp32", max_batch: int = 16) -> Path:
    plan = tmp_path / f"{precision}.plan"
    build_plan(_onnx(tmp_path, precision), plan,
               BuildOptions(precision, opt_batch=min(4, max_batch), max_batch=max_batch))
    return plan


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_runner_reads_io_from_the_engine(env: Env, tmp_path: Path, precision: str) -> None:
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    with TensorRTRunner(_engine(env, tmp_path, precision)) as runner:
        assert [(i.name, i.shape, i.dtype) for i in runner.inputs] == [
            ("pixels", (None, 4, 4, 3), np.dtype(np.uint8))]
        assert [(o.name, o.shape, o.dtype) for o in runner.outputs] == [
            ("scores", (None, 3), np.dtype(np.float32))]
        assert runner.max_batch == 16
        batch = pixels(5)
        scores = runner.predict(batch)
        assert set(runner.last_timings) == {"h2d_ms", "compute_ms", "d2h_ms"}
    np.testing.assert_allclose(scores, expected(batch, precision), atol=1e-3)
    assert env.gpu.live() == {"device": 0, "host": 0, "streams": 0, "events": 0}


def test_runner_splits_a_batch_over_the_profile_in_order(env: Env, tmp_path: Path) -> None:
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    batch = pixels(11, seed=3)
    with TensorRTRunner(_engine(env, tmp_path, max_batch=4)) as runner:
        assert runner.max_batch == 4
        scores = runner.predict(batch)
    assert scores.shape == (11, 3)
    np.testing.assert_allclose(scores, expected(batch), atol=1e-6)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other-version"])
def test_unloadable_plan_is_one_line(env: Env, tmp_path: Path, damage: str) -> None:
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    plan = _engine(env, tmp_path)
    blob = plan.read_bytes()
    if damage == "garbage":
        plan.write_bytes(b"\x00not an engine" * 10)
    elif damage == "truncated":
        plan.write_bytes(blob[: len(blob) // 3])
    else:
        plan.write_bytes(blob.replace(env.trt.__version__.encode(), b"7.0.0", 1))
    with pytest.raises(BackendError) as caught:
        TensorRTRunner(plan)
    assert "\n" not in str(caught.value) and "could not deserialize" in str(caught.value)
    assert env.gpu.live()["device"] == 0


# ----------------------------------------------------------------- engine_for
def test_engine_for_keeps_rebuilds_and_forces(env: Env, tmp_path: Path) -> None:
    bundle = onnx_bundle(tmp_path / "bundle")
    identity = _identity(env)
    plan = engine_for(bundle, "classifier", "fp16", identity=identity)
    assert plan.parent == manifest.engines_folder(bundle.root, identity)
    entry = manifest.read_manifest(plan.parent)["engines"]["classifier.fp16"]
    timed = env.gpu.stats["timed"]
    assert engine_for(bundle, "classifier", "fp16", identity=identity) == plan  # kept
    assert env.gpu.stats["timed"] == timed and env.gpu.stats["reused"] == 0
    again = manifest.read_manifest(plan.parent)["engines"]["classifier.fp16"]
    assert again["built"] == entry["built"]
    # --force rebuilds (from the timing cache: nothing is timed again)
    engine_for(bundle, "classifier", "fp16", identity=identity, force=True)
    assert env.gpu.stats["reused"] == timed
    # a changed ONNX rebuilds, and the manifest records the new source hash
    changed = classifier("fp16")
    changed.doc_string = "re-exported"  # same graph, other bytes
    onnx.save(changed, bundle.path("onnx/classifier.fp16.onnx"))
    engine_for(bundle, "classifier", "fp16", identity=identity)
    rebuilt = manifest.read_manifest(plan.parent)["engines"]["classifier.fp16"]
    assert rebuilt["sha256_source"] != entry["sha256_source"]
    assert rebuilt["options"]["tf32"] is False
    assert manifest.find_engine(bundle, "classifier", "fp16", identity) == plan


def test_engine_for_refuses_a_mismatched_folder_without_force(env: Env, tmp_path: Path) -> None:
    bundle = onnx_bundle(tmp_path / "bundle")
    identity = _identity(env)
    folder = manifest.engines_folder(bundle.root, identity)
    manifest.write_manifest(folder, manifest.new_manifest({**identity, "tensorrt": "7.2.3"}))
    with pytest.raises(BackendError, match=r"TensorRT differs.*--force"):
        engine_for(bundle, "classifier", "fp32", identity=identity)
    plan = engine_for(bundle, "classifier", "fp32", identity=identity, force=True)
    data = manifest.read_manifest(folder)
    assert data["tensorrt"] == env.trt.__version__ and plan.is_file()
    assert manifest.check_manifest(data, identity) is None


def test_engine_for_does_not_take_the_wanted_compat_for_the_folders(env: Env,
                                                                    tmp_path: Path) -> None:
    # A GPU folder whose manifest says ampere+ (the layout before ampere-plus folders) over a
    # plan that matches in everything else: a plain build must compare the folder's own level,
    # not overwrite it with the wanted one first and then keep a plan the manifest misdescribes.
    bundle = onnx_bundle(tmp_path / "bundle")
    identity = _identity(env)
    plan = engine_for(bundle, "classifier", "fp32", identity=identity)
    data = manifest.read_manifest(plan.parent)
    manifest.write_manifest(plan.parent, {**data, "hardware_compatibility": "ampere+"})
    builds = env.gpu.stats["timed"] + env.gpu.stats["reused"]
    assert engine_for(bundle, "classifier", "fp32", identity=identity) == plan
    assert env.gpu.stats["timed"] + env.gpu.stats["reused"] > builds  # rebuilt
    assert manifest.read_manifest(plan.parent)["hardware_compatibility"] == "none"
    assert read_plan(plan.read_bytes())[0]["hardware_compat"] == "NONE"


def test_build_engines_step_makes_then_keeps(env: Env, tmp_path: Path) -> None:
    from edgecrystal.converters.build import Options, Report, make_engines

    bundle = onnx_bundle(tmp_path / "bundle")
    lines: list[str] = []
    first = Report()
    summary = make_engines(bundle, ["classifier"], Options(), first, lines.append)
    assert [s["action"] for s in first.steps] == ["made", "made", "made"]
    assert f"trt{env.trt.__version__}" in summary
    second = Report()
    make_engines(bundle, ["classifier"], Options(), second, lines.append)
    assert [s["action"] for s in second.steps] == ["kept", "kept", "kept"]
    third = Report()
    make_engines(bundle, ["classifier"], Options(hardware_compat=True), third, lines.append)
    assert [s["action"] for s in third.steps] == ["made", "made", "made"]
    assert third.steps[0]["file"].startswith(f"engines/ampere-plus-trt{env.trt.__version__}/")


def test_hardware_compat_engines_serve_every_ampere_gpu(env: Env, tmp_path: Path) -> None:
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    bundle = onnx_bundle(tmp_path / "bundle")
    built_on = _identity(env)  # RTX 4090, sm89
    plan = engine_for(bundle, "classifier", "fp32", options=BuildOptions(
        "fp32", hardware_compat=True), identity=built_on)
    assert plan.parent.name == f"ampere-plus-trt{env.trt.__version__}"
    assert manifest.read_manifest(plan.parent)["hardware_compatibility"] == "ampere+"
    # Another GPU, sm80: finds and loads the same plan.
    env.gpu.name, env.gpu.major, env.gpu.minor = "NVIDIA A100-SXM4-40GB", 8, 0
    a100 = _identity(env)
    assert manifest.find_engine(bundle, "classifier", "fp32", a100) == plan
    with TensorRTRunner(plan) as runner:
        np.testing.assert_allclose(runner.predict(pixels(2)), expected(pixels(2)), atol=1e-6)
    # Kept, not rebuilt, when asked again from that GPU.
    timed = env.gpu.stats["timed"]
    assert engine_for(bundle, "classifier", "fp32", options=BuildOptions(
        "fp32", hardware_compat=True), identity=a100) == plan
    assert env.gpu.stats["timed"] == timed
    # Turing (sm75) neither finds it nor may build one.
    env.gpu.name, env.gpu.major, env.gpu.minor = "Tesla T4", 7, 5
    turing = _identity(env)
    assert not isinstance(manifest.find_engine(bundle, "classifier", "fp32", turing), Path)
    with pytest.raises(UsageError, match="Ampere or newer"):
        engine_for(bundle, "classifier", "fp32",
                   options=BuildOptions("fp32", hardware_compat=True), identity=turing)


# ----------------------------------------------------------------- --backend auto
def test_backend_auto_builds_and_uses_tensorrt(env: Env, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from edgecrystal.runtime.select import open_runners

    bundle = onnx_bundle(tmp_path / "bundle")
    with caplog.at_level(logging.INFO, logger="edgecrystal"):
        selection = open_runners(bundle, backend="auto", precision="int8")
    try:
        assert selection.backend == "tensorrt"
        assert "built engines for classifier" in selection.reason
        batch = pixels(6)
        np.testing.assert_allclose(selection.classifier.predict(batch),
                                   expected(batch, "int8"), atol=1e-6)
    finally:
        selection.close()
    assert "building the engine" in caplog.text
    again = open_runners(Bundle.open(bundle.root), backend="auto", precision="int8")
    assert again.backend == "tensorrt" and "engines match" in again.reason
    again.close()


@pytest.mark.parametrize("cause", ["driver-too-old", "no-tensorrt", "corrupt-engine"])
def test_backend_auto_falls_back_with_the_reason_logged(
        env: Env, tmp_path: Path, caplog: pytest.LogCaptureFixture, cause: str) -> None:
    from edgecrystal.runtime.select import open_runners

    bundle = onnx_bundle(tmp_path / "bundle")
    expected_reason = {"driver-too-old": "cudaErrorInsufficientDriver",
                       "no-tensorrt": "TensorRT is not importable",
                       "corrupt-engine": "could not deserialize"}[cause]
    if cause == "driver-too-old":
        env.gpu.driver = 11080  # below what the installed cuda-python needs; no pycuda
    elif cause == "no-tensorrt":
        hide(env.monkeypatch, "tensorrt")
    else:
        plan = engine_for(bundle, "classifier", "fp32", identity=_identity(env))
        plan.write_bytes(b"damaged")
    # Logged at debug: the reason travels in the Selection, which every caller prints or logs
    # once (a warning here printed it twice on every CPU run).
    with caplog.at_level(logging.DEBUG, logger="edgecrystal.runtime.select"):
        selection = open_runners(bundle, backend="auto", precision="fp32")
    selection.close()
    assert selection.backend == "onnxruntime"
    assert expected_reason in selection.reason and expected_reason in selection.describe()
    assert expected_reason in caplog.text and "using ONNX Runtime" in caplog.text
    with pytest.raises(BackendError, match=expected_reason):
        open_runners(bundle, backend="tensorrt", precision="fp32")


# ----------------------------------------------------------------- device identity
@pytest.mark.parametrize("binding", ["cuda-python-12.6", "cuda-python-12.9", "cuda-python-13.0"])
def test_device_identity_through_cuda_python(env: Env, binding: str) -> None:
    version = binding.rsplit("-", 1)[1]
    env.gpu.driver = 13000 if version.startswith("13") else 12060
    install_cuda_python(env.monkeypatch, env.gpu, version)
    probe = probe_device()
    assert probe.binding == "cuda-python" and probe.reasons == []
    assert probe.identity == {"gpu": "NVIDIA GeForce RTX 4090", "compute_capability": "8.9",
                              "tensorrt": env.trt.__version__, "cuda_driver": env.gpu.driver}
    assert manifest.folder_name(probe.identity) == f"geforce-rtx-4090-sm89-trt{env.trt.__version__}"


def test_driver_too_old_for_cuda_python_13_falls_back_to_pycuda(env: Env) -> None:
    env.gpu.driver = 12060  # JetPack 6 / a 560-series driver
    install_cuda_python(env.monkeypatch, env.gpu, "13.0")
    install_pycuda(env.monkeypatch, env.gpu)
    probe = probe_device()
    assert probe.binding == "pycuda"
    assert probe.identity is not None and probe.identity["compute_capability"] == "8.9"
    assert "cudaErrorInsufficientDriver" in probe.reason
    assert "edgecrystal[tensorrt-cu12]" in probe.reason


def test_runner_memory_through_pycuda_when_cuda_python_fails(env: Env, tmp_path: Path) -> None:
    from edgecrystal.runtime.cuda_memory import PyCuda, open_cuda
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    plan = _engine(env, tmp_path)
    env.gpu.driver = 12020  # JetPack 6.0 (CUDA 12.2)
    install_cuda_python(env.monkeypatch, env.gpu, "13.0")
    install_pycuda(env.monkeypatch, env.gpu)
    cuda = open_cuda()
    assert isinstance(cuda, PyCuda)
    cuda.free()
    with TensorRTRunner(plan) as runner:
        batch = pixels(7)
        np.testing.assert_allclose(runner.predict(batch), expected(batch), atol=1e-6)


def test_no_working_binding_gives_every_reason(env: Env) -> None:
    from edgecrystal.runtime.cuda_memory import open_cuda

    env.gpu.driver = 12020
    install_cuda_python(env.monkeypatch, env.gpu, "13.0")
    probe = probe_device()
    assert probe.identity is None
    assert "cudaErrorInsufficientDriver" in probe.reason and "pycuda is not installed" in \
        probe.reason
    with pytest.raises(BackendError, match=r"neither works here.*pycuda is not installed"):
        open_cuda()


# ----------------------------------------------------------------- the fakes themselves
def test_the_fake_lacks_what_the_real_version_lacks(env: Env) -> None:
    trt = env.trt
    # Spot checks against what each release notes say, so a fixture that lost its contents
    # would fail here rather than let every other test pass on an empty module.
    assert hasattr(trt.BuilderFlag, "FP16") is (env.major < 11)
    assert hasattr(trt, "IInt8EntropyCalibrator2") is (env.major < 11)
    assert hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") is (env.major >= 10)
    assert hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH") is (env.major < 11)
    assert hasattr(trt.ParserError, "node_name") is (env.major >= 10)
    assert hasattr(trt.BuilderFlag, "TF32")
    with pytest.raises(AttributeError):
        trt.Builder(trt.Logger()).build_engine_with_magic  # noqa: B018
    with pytest.raises(TypeError):
        trt.Builder(trt.Logger()).create_network(0, 1)


# ----------------------------------------------------------------- DLA (Orin NX / AGX Orin)
# NVIDIA: DLA up to TensorRT 10.7 (8.6 and 10.3 here), none in 10.8+ and 11.0-11.3, 11.4.0 on
# Windows on ARM only (11.4 here), 11.4.1+ on AGX Orin with JetPack 7.2.2+.
HAS_DLA = {"8.6": True, "10.3": True, "10.13": False, "11.4": False}
NO_DLA_LINE = {"10.13": "has no DLA (10.7 was the last 10.x with DLA)",
               "11.4": "has DLA on Windows on ARM only"}


def _orin(env: Env, cores: int = 2) -> None:
    env.gpu.name, env.gpu.major, env.gpu.minor, env.gpu.dla_cores = "Orin", 8, 7, cores


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_dla_apis_exist_in_every_binding(env: Env) -> None:
    """Every DLA API the project calls is in the real surface of this version."""
    trt = env.trt
    assert {"GPU", "DLA"} <= set(trt.DeviceType.__members__)
    for name in ("default_device_type", "DLA_core", "can_run_on_DLA", "set_flag"):
        assert hasattr(trt.IBuilderConfig, name)
    assert hasattr(trt.Builder, "num_DLA_cores") and hasattr(trt.Runtime, "DLA_core")
    assert hasattr(trt.BuilderFlag, "GPU_FALLBACK")
    assert hasattr(trt.ICudaEngine, "create_engine_inspector")
    assert hasattr(trt.EngineInspector, "get_engine_information")
    assert hasattr(trt.LayerInformationFormat, "JSON")
    assert hasattr(trt.INetworkDefinition, "get_layer") and hasattr(trt.ILayer, "name")


def test_dla_build_or_the_version_refusal(env: Env, tmp_path: Path) -> None:
    _orin(env)
    plan = tmp_path / "dla.plan"
    options = BuildOptions("fp16", opt_batch=4, max_batch=16, dla_core=1, gpu_fallback=True)
    if not HAS_DLA[env.version]:
        with pytest.raises(UsageError) as exc:
            build_plan(_onnx(tmp_path, "fp16"), plan, options)
        assert NO_DLA_LINE[env.version] in _one_line(exc) and "JetPack 6" in str(exc.value)
        assert not plan.exists()
        return
    facts = build_plan(_onnx(tmp_path, "fp16"), plan, options)
    header, _ = read_plan(plan.read_bytes())
    assert header["device"] == "DLA" and header["dla_core"] == 1
    assert "GPU_FALLBACK" in header["flags"]
    # Static profile: min = opt = max = the opt batch.
    assert header["profiles"][0]["pixels"] == [[4, 4, 4, 3]] * 3
    assert facts["profile"]["min"] == facts["profile"]["max"] == [4, 4, 4, 3]
    placement = facts["placement"]
    # The fake's DLA has no Cast: the fp16 classifier's casts go to the GPU, the rest to DLA.
    assert placement["device"] == "dla1" and placement["gpu_fallback"] is True
    assert set(placement["gpu_layers"]) == set(header["gpu_layers"]) >= {"to_float"}
    assert placement["layers"]["dla"] + placement["layers"]["gpu"] == header["layers"]


@pytest.mark.parametrize("case", ["no-dla-board", "core-out-of-range", "fp32", "no-fallback",
                                  "dynamic-image"])
def test_dla_refusals_are_one_line_with_reason_and_fix(env: Env, tmp_path: Path,
                                                       case: str) -> None:
    _orin(env, cores=0 if case == "no-dla-board" else 2)
    source = _onnx(tmp_path, "fp32" if case == "fp32" else "fp16")
    if case == "dynamic-image":
        model = onnx.load(source)
        for dim in model.graph.input[0].type.tensor_type.shape.dim[1:3]:
            dim.dim_param = "side"
        onnx.save(model, source)
    options = BuildOptions("fp32" if case == "fp32" else "fp16",
                           dla_core=2 if case == "core-out-of-range" else 0,
                           gpu_fallback=case != "no-fallback")
    with pytest.raises(UsageError) as exc:
        build_plan(source, tmp_path / "x.plan", options)
    text = _one_line(exc)
    if not HAS_DLA[env.version]:  # the TensorRT line is refused before the board is asked
        assert NO_DLA_LINE[env.version] in text
        return
    reason, fix = {"no-dla-board": ("has no DLA core", "drop --dla-core"),
                   "core-out-of-range": ("2 DLA core(s), numbered 0 to 1", "choose one"),
                   "fp32": ("FP16 and INT8 only", "--precision fp16 or int8"),
                   "no-fallback": ("cannot run on DLA (to_float", "add --gpu-fallback"),
                   "dynamic-image": ("DLA needs static shapes", "fixed image size")}[case]
    assert reason in text and fix in text


def test_dla_engine_serves_beside_the_gpu_engine(env: Env, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """--backend tensorrt with dla {classifier: 0}: the engine is built at start (progress
    lines), kept under its own key, loaded on DLA core 0, a short batch padded to the static
    one; where this TensorRT has no DLA, auto falls back with the version's reason."""
    from edgecrystal.runtime.select import open_runners

    _orin(env)
    bundle = onnx_bundle(tmp_path / "bundle")
    lines: list[str] = []
    if not HAS_DLA[env.version]:
        with caplog.at_level(logging.DEBUG, logger="edgecrystal.runtime.select"):
            selection = open_runners(bundle, backend="auto", precision="fp16",
                                     dla={"classifier": 0}, progress=lines.append)
        selection.close()
        assert selection.backend == "onnxruntime"
        assert NO_DLA_LINE[env.version] in selection.reason and "using ONNX Runtime" in caplog.text
        return
    selection = open_runners(bundle, backend="tensorrt", precision="fp16",
                             dla={"classifier": 0}, progress=lines.append)
    try:
        runner = selection.classifier
        assert lines[0] == f"building classifier fp16 engine for dla0 (TensorRT " \
                           f"{env.trt.__version__}) ..."
        assert lines[-1].startswith("built classifier fp16 engine for dla0") and " s" in lines[-1]
        assert "classifier tensorrt" in selection.reason and "on dla0 (" in selection.reason
        assert "layers on DLA" in selection.reason and "engine_layers=" in runner.describe()
        assert runner.min_batch == runner.max_batch == 4
        batch = pixels(3)  # shorter than the static batch: padded, the padding dropped
        np.testing.assert_allclose(runner.predict(batch), expected(batch, "fp16"), atol=2e-3)
        assert env.gpu.stats["dla0_runs"] >= 1
    finally:
        selection.close()
    plan = Path(str(runner.path))
    assert plan.name == "classifier.fp16.dla0.plan"
    entry = manifest.read_manifest(plan.parent)["engines"]["classifier.fp16.dla0"]
    assert entry["device"] == "dla0" and entry["options"]["batch"] == [4, 4, 4]
    # The GPU engine is another key: not found until built, and found without DLA after.
    identity = _identity(env)
    assert "no classifier.fp16 engine" in str(manifest.find_engine(bundle, "classifier",
                                                                   "fp16", identity))
    gpu_plan = engine_for(bundle, "classifier", "fp16", identity=identity)
    assert manifest.find_engine(bundle, "classifier", "fp16", identity) == gpu_plan
    assert manifest.find_engine(bundle, "classifier", "fp16", identity, dla_core=0) == plan


def test_hardware_compat_is_refused_on_jetson(env: Env, tmp_path: Path) -> None:
    """NVIDIA documents hardware compatibility for desktop Ampere+ GPUs, not JetPack: an Orin
    neither builds AMPERE_PLUS engines nor loads those a workstation built."""
    bundle = onnx_bundle(tmp_path / "bundle")
    workstation = _identity(env)
    engine_for(bundle, "classifier", "fp32", options=BuildOptions(
        "fp32", hardware_compat=True), identity=workstation)
    _orin(env)
    orin = _identity(env)
    found = manifest.find_engine(bundle, "classifier", "fp32", orin)
    assert isinstance(found, str) and found.startswith("no engines were built for Orin")
    with pytest.raises(UsageError) as exc:
        engine_for(bundle, "classifier", "fp32",
                   options=BuildOptions("fp32", hardware_compat=True), identity=orin)
    assert "not supported on Jetson" in _one_line(exc)


# ----------------------------------------------------------------- ONNX Runtime's TensorRT EP
def test_ort_trt_cache_is_keyed_like_the_manifest(env: Env, tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgecrystal.runtime.ort_tensorrt import _identity as ort_identity
    from edgecrystal.runtime.ort_tensorrt import cache_folder

    identity = ort_identity()
    assert identity["tensorrt"] == env.trt.__version__
    folder = cache_folder(tmp_path, identity, ort.__version__)
    assert folder.parent == tmp_path / "engines"
    assert folder.name == f"ort{ort.__version__}-geforce-rtx-4090-sm89-trt{env.trt.__version__}"


def test_ort_trt_dla_refused_where_tensorrt_has_none(env: Env) -> None:
    from edgecrystal.runtime.ort_tensorrt import _check_dla

    if HAS_DLA[env.version]:
        _check_dla(0, "int8", env.trt.__version__)
        with pytest.raises(UsageError, match="FP16 and INT8 only"):
            _check_dla(0, "fp32", env.trt.__version__)
        return
    with pytest.raises(UsageError) as exc:
        _check_dla(0, "fp16", env.trt.__version__)
    assert NO_DLA_LINE[env.version] in _one_line(exc)


def test_auto_tries_ort_trt_between_tensorrt_and_cpu(env: Env, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """Raw TensorRT unusable (no engine, building off): auto asks the real onnxruntime for its
    TensorRT provider (absent in the CPU wheel), logs both reasons and runs on the CPU."""
    from edgecrystal.runtime.select import open_runners

    bundle = onnx_bundle(tmp_path / "bundle")
    with caplog.at_level(logging.DEBUG, logger="edgecrystal.runtime.select"):
        selection = open_runners(bundle, backend="auto", precision="fp32", allow_build=False)
    selection.close()
    assert selection.backend == "onnxruntime"
    assert "engine building is off" in selection.reason
    assert "onnxruntime-trt not used" in selection.reason
    assert "has no TensorrtExecutionProvider" in caplog.text
    with pytest.raises(BackendError, match="has no TensorrtExecutionProvider"):
        open_runners(bundle, backend="onnxruntime-trt", precision="fp32")


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_ort_trt_refuses_a_session_that_dropped_the_provider(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider listed as available that the session does not enable (missing libnvinfer:
    onnxruntime warns and runs on the CPU) is an error, not a silent CPU run."""
    import onnxruntime as ort

    from edgecrystal.runtime.ort_tensorrt import CUDA_PROVIDER, TRT_PROVIDER, OrtTensorRTRunner

    real = ort.get_available_providers()
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: [TRT_PROVIDER, CUDA_PROVIDER, *real])
    bundle = onnx_bundle(tmp_path / "bundle")
    with pytest.raises(BackendError) as exc:
        OrtTensorRTRunner(bundle.path("onnx/classifier.fp16.onnx"), bundle=bundle,
                          precision="fp16")
    assert "TensorRT provider" in _one_line(exc)


# ----------------------------------------------------------------- INT8 gate hook (engines)
def test_int8_engine_gate_is_recorded_in_the_manifest(env: Env, tmp_path: Path) -> None:
    from edgecrystal.runtime.engine_gate import engine_gate

    bundle = onnx_bundle(tmp_path / "bundle")
    identity = _identity(env)
    fp32 = engine_for(bundle, "classifier", "fp32", identity=identity)
    batch = pixels(8, seed=3)
    int8 = engine_for(bundle, "classifier", "int8", identity=identity,
                      gate=engine_gate(fp32, batch, min_agreement=0.9))
    gate = manifest.read_manifest(int8.parent)["engines"]["classifier.int8"]["gate"]
    want, got = expected(batch), expected(batch, "int8")
    assert gate["images"] == 8 and gate["reference"] == "classifier.fp32.plan"
    assert gate["max_abs_diff"] == pytest.approx(float(np.max(np.abs(want - got))), abs=1e-6)
    agreement = float(np.mean(want.argmax(1) == got.argmax(1)))
    assert gate["top1_agreement"] == pytest.approx(agreement)
    assert gate["passed"] is (agreement >= 0.9)
    assert not env.gpu.live()["device"]  # both runners freed their buffers


def test_bench_runs_the_dla_engine_and_says_where_layers_run(env: Env, tmp_path: Path) -> None:
    from edgecrystal.bench.run import BenchConfig, measure

    _orin(env)
    bundle = onnx_bundle(tmp_path / "bundle")
    bundle.meta["classes"] = ["clear", "precipitate", "crystals"]  # the fake's 3 outputs
    bundle.save()
    cfg = BenchConfig(backends=("tensorrt",), precisions=("fp16",), batch=2, iterations=2,
                      warmup=1, synthetic=2, dla=(("classifier", 0),))
    if not HAS_DLA[env.version]:
        with pytest.raises(UsageError, match="no backend could run here"):
            measure(bundle.root, cfg, log=lambda _line: None)
        return
    engine_for(bundle, "classifier", "fp16", options=BuildOptions(
        "fp16", dla_core=0, gpu_fallback=True), identity=_identity(env))
    lines: list[str] = []
    report, _runs = measure(bundle.root, cfg, log=lines.append)
    started = [line for line in lines if line.startswith("bench tensorrt/fp16:")]
    assert len(started) == 1 and "classifier tensorrt" in started[0]
    assert "on dla0 (" in started[0] and "layers on DLA" in started[0]
    assert report["config"]["dla"] == {"classifier": 0}
    assert env.gpu.stats["dla0_runs"] >= 3


def test_crystal_model_engines_are_built_kept_and_run(env: Env, crystals_bundle: Path,
                                                      tmp_path: Path) -> None:
    """build-engines' engine step takes the crystal model like the finder and the classifier:
    one engine per precision from its own ONNX variant, kept on a re-run, and each engine gives
    the crystal map its ONNX gives in ONNX Runtime."""
    import shutil

    from onnx_fixtures import run_pixels

    from edgecrystal.converters.build import Options, Report, make_engines
    from edgecrystal.runtime.tensorrt_runner import TensorRTRunner

    root = tmp_path / "bundle"
    shutil.copytree(crystals_bundle, root)
    bundle = Bundle.open(root)
    first, second = Report(), Report()
    make_engines(bundle, ["crystals"], Options(), first, lambda _line: None)
    assert [(s["model"], s["precision"], s["action"]) for s in first.steps] == [
        ("crystals", p, "made") for p in ("fp32", "fp16", "int8")]
    make_engines(bundle, ["crystals"], Options(), second, lambda _line: None)
    assert [s["action"] for s in second.steps] == ["kept"] * 3
    size = bundle.input_size("crystals")
    batch = np.random.default_rng(1).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    for step in first.steps:
        source = bundle.onnx_variant("crystals", step["precision"], "tensorrt")
        with TensorRTRunner(root / step["file"]) as runner:
            assert [o.name for o in runner.outputs] == ["crystals"]
            got = runner.predict(batch)
        assert got.shape == (3, size, size, 1)
        np.testing.assert_allclose(got, run_pixels(source, batch), atol=1e-3)

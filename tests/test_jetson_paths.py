"""The Jetson paths that need no fake TensorRT: the version matrix (and its copy in
docs/jetson.md), ONNX Runtime's TensorRT provider names and options against the real
onnxruntime and its documented option list, build progress lines, `edgecrystal doctor`, the
daemon's dla_core key and build-engines' DLA refusals as a user meets them."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecrystal.engines import versions
from edgecrystal.errors import UsageError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("tensorrt", "has_dla"), [
    ("8.5.2", True), ("8.6.2", True), ("10.3.0", True), ("10.7.0", True), ("10.8.0", False),
    ("10.13.3.9", False), ("11.0.0", False), ("11.3.0", False), ("11.4.0.106", False),
    ("11.4.1", True), ("11.5.0", False)])
def test_dla_by_tensorrt_version(tensorrt: str, has_dla: bool) -> None:
    problem = versions.dla_problem(tensorrt)
    assert (problem is None) is has_dla
    if problem:
        assert "\n" not in problem and "drop --dla-core" in problem


def test_docs_print_the_matrix_the_code_uses() -> None:
    assert versions.markdown_table() in (REPO / "docs" / "jetson.md").read_text()


def test_jetson_rows_name_an_extra_of_pyproject() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    for row in versions.MATRIX:
        assert not row.extra or f"\n{row.extra} = [" in pyproject
    assert versions.is_jetson("8.7") and not versions.is_jetson("8.9")


def test_ort_trt_option_names_are_documented_and_providers_real(tmp_path: Path) -> None:
    import onnxruntime as ort

    from edgecrystal.runtime.ort_tensorrt import CUDA_PROVIDER, TRT_PROVIDER, provider_options

    documented = json.loads((REPO / "tests" / "binding_api" /
                             "onnxruntime-trt-options.json").read_text())
    assert documented["provider"] == TRT_PROVIDER
    for precision in ("fp32", "fp16", "int8"):
        for core in (None, 1):
            options = provider_options(precision, tmp_path, core)
            assert set(options) <= set(documented["options"])
            assert all(isinstance(v, str) for v in options.values())
    assert provider_options("int8", tmp_path, 1)["trt_dla_core"] == "1"
    # The installed onnxruntime knows both providers by these names, and this CPU wheel has
    # neither available (what the fallback tests rely on).
    assert {TRT_PROVIDER, CUDA_PROVIDER} <= set(ort.get_all_providers())
    assert TRT_PROVIDER not in ort.get_available_providers()


def test_build_progress_lines_start_tick_and_end() -> None:
    from edgecrystal.engines.progress import watched

    lines: list[str] = []
    with watched("finder fp16 engine for dla0", lines.append, every=0.05):
        time.sleep(0.2)
    assert lines[0] == "building finder fp16 engine for dla0 ..."
    assert any(line.startswith("still building finder fp16 engine for dla0: ")
               for line in lines[1:-1])
    assert lines[-1].startswith("built finder fp16 engine for dla0 in ")
    failed: list[str] = []
    with pytest.raises(RuntimeError), watched("classifier int8 engine", failed.append):
        raise RuntimeError("builder said no")
    assert failed[-1].startswith("building classifier int8 engine failed after ")


def test_doctor_says_what_this_machine_runs() -> None:
    res = subprocess.run([sys.executable, "-m", "edgecrystal", "doctor"], capture_output=True,
                         text=True, timeout=120, env={"EDGECRYSTAL_BLOCK_TF": "1",
                                                      "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    keys = [line.split(":", 1)[0] for line in lines]
    assert keys[:3] == ["python", "cpu", "onnxruntime"]
    for key in ("gpu", "tensorrt", "dla", "backend tensorrt", "backend onnxruntime-trt",
                "backend onnxruntime (CPU)"):
        assert key in keys, key
    # This machine: no GPU, no TensorRT; each "no" says why.
    assert "backend onnxruntime-trt: no (onnxruntime" in res.stdout
    assert "has no TensorrtExecutionProvider" in res.stdout


def test_doctor_says_the_cpu_int8_family(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU line names the family build-engines makes INT8 for (edgecrystal.cpu_isa, which
    EDGECRYSTAL_CPU_FAMILY overrides), not only flags."""
    from edgecrystal import cpu_isa
    from edgecrystal.doctor import cpu_line

    monkeypatch.delenv("EDGECRYSTAL_CPU_FAMILY", raising=False)
    assert cpu_line().startswith(f"cpu: {platform.machine()} {cpu_isa.detect().family} (")
    monkeypatch.setenv("EDGECRYSTAL_CPU_FAMILY", cpu_isa.ARM64_I8MM)
    assert cpu_line(machine="aarch64") == (
        "cpu: aarch64 arm64-i8mm (no int8 flags; from EDGECRYSTAL_CPU_FAMILY)")


def test_daemon_dla_core_key(tmp_path: Path) -> None:
    from edgecrystal.daemon.config import load_config

    (tmp_path / "b").mkdir()
    path = tmp_path / "c.toml"
    path.write_text('bundle = "b"\nwatch = ["b"]\ndla_core = { finder = 0 }\n')
    assert dict(load_config(path).dla_core) == {"finder": 0}
    for bad in ('{ finder = -1 }', '{ unet = 0 }', '"finder"', '{ finder = true }'):
        path.write_text(f'bundle = "b"\nwatch = ["b"]\ndla_core = {bad}\n')
        with pytest.raises(UsageError, match="dla_core must be a table"):
            load_config(path)


@pytest.mark.parametrize(("args", "message"), [
    (["--dla-core", "0", "--precision", "fp32"], "DLA runs FP16 and INT8 only"),
    (["--gpu-fallback"], "--gpu-fallback goes with --dla-core"),
    (["--dla-core", "0", "--hardware-compat"], "do not go together")])
def test_build_engines_dla_refusals(tmp_path: Path, args: list[str], message: str) -> None:
    from fakes.onnx_models import onnx_bundle

    bundle = onnx_bundle(tmp_path / "bundle")
    res = subprocess.run([sys.executable, "-m", "edgecrystal", "build-engines", str(bundle.root),
                          *args], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout + res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


GPU_CHECK_SITE = """
import sys
sys.path.insert(0, {tests!r})
from fakes.cuda import FakeGpu, install_cuda_python
from fakes.tensorrt import install_tensorrt


class Modules:
    def setitem(self, mapping, key, value):
        mapping[key] = value


gpu = FakeGpu(name="Orin", major=8, minor=7, driver=12060, dla_cores={cores})
install_tensorrt(Modules(), {version!r}, gpu)
install_cuda_python(Modules(), gpu, "12.6")
sys.modules["pycuda"] = None
"""


@pytest.mark.trt_api
@pytest.mark.parametrize(("version", "cores", "says"), [
    ("10.3", 2, "dla: 2 core(s) (TensorRT 10.3.0)"),
    ("10.3", 0, "dla: 0 core(s) (TensorRT 10.3.0)"),
    ("10.13", 2, "dla: none with TensorRT 10.13.3.9")])
def test_gpu_check_reports_the_jetson_paths(tmp_path: Path, version: str, cores: int,
                                            says: str) -> None:
    (tmp_path / "sitecustomize.py").write_text(GPU_CHECK_SITE.format(
        tests=str(REPO / "tests"), cores=cores, version=version))
    env = {**__import__("os").environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "edgecrystal", "gpu-check"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    line = done.stdout.strip()
    assert line.startswith("gpu-check ok: Orin sm87") and "\n" not in line
    assert line.endswith(f"{says}; onnxruntime-trt: not installed")


def test_bench_dla_option_is_refused_in_one_line(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "edgecrystal", "bench", str(tmp_path),
                          "--dla", "unet=0"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "give MODEL=CORE" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1

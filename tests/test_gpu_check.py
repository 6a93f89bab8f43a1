"""`edgecrystal gpu-check`, run as a real subprocess with the fake cuda-python of tests/fakes put in
place by a sitecustomize module: its one summary line, and its failure line when the driver is
too old for the binding. On a GPU machine the same command runs against the real binding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakes.site import write_sitecustomize

REPO = Path(__file__).resolve().parents[1]
SITE = """
install_cuda_python(Modules(), FakeGpu(name="NVIDIA H100 80GB HBM3", major=9, minor=0,
                                       driver={driver}), "13.0")
sys.modules["pycuda"] = None
"""


def _run(tmp_path: Path, driver: int) -> subprocess.CompletedProcess[str]:
    write_sitecustomize(tmp_path, SITE.format(driver=driver))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run([sys.executable, "-m", "edgecrystal", "gpu-check"], capture_output=True,
                          text=True, env=env, timeout=120)


def test_gpu_check_reports_one_line(tmp_path: Path) -> None:
    done = _run(tmp_path, driver=13000)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gpu-check ok: NVIDIA H100 80GB HBM3 sm90, driver CUDA 13.0")
    assert "cuda.bindings.runtime" in lines[0] and "round trip identical" in lines[0]


@pytest.mark.parametrize("driver", [12020, 12060, 12080])
def test_gpu_check_fails_in_one_line_on_a_too_old_driver(tmp_path: Path, driver: int) -> None:
    done = _run(tmp_path, driver=driver)
    assert done.returncode == 1
    assert done.stdout.startswith("gpu-check FAILED: no GPU identified: cuda-python "
                                  "cudaGetDeviceCount failed: cudaErrorInsufficientDriver")
    assert len(done.stdout.strip().splitlines()) == 1

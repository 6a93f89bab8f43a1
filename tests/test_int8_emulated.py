"""INT8 follows FP32 on an AVX2 CPU without VNNI, proved on any x86 machine by running the
numeric test under QEMU's user-mode emulator as a Haswell (ONNX Runtime then dispatches its
AVX2 kernels, whose u8 x s8 pair sums saturate: the form chosen for that family must not care).
Slow: emulated, a model run costs 10-50x. scripts/setup-services.sh installs qemu-user."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NUMERIC_TEST = "tests/test_concat_split.py::test_int8_runs_the_join_without_a_concat"


@pytest.mark.slow
def test_int8_follows_fp32_on_an_emulated_avx2_cpu() -> None:
    qemu = shutil.which("qemu-x86_64")
    if qemu is None or platform.machine() != "x86_64":
        pytest.skip("needs qemu-x86_64 (Debian's qemu-user) on an x86_64 machine")
    env = {**os.environ, "EDGECRYSTAL_BLOCK_TF": "1"}
    env.pop("EDGECRYSTAL_CPU_FAMILY", None)
    done = subprocess.run(
        [qemu, "-cpu", "Haswell", sys.executable, "-m", "pytest", NUMERIC_TEST, "-p",
         "no:cacheprovider", "-o", "addopts="],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    output = done.stdout + "\n".join(line for line in done.stderr.splitlines()
                                     if "TCG doesn't support" not in line)
    assert "edgecrystal cpu family: x86-avx2" in output, output[-3000:]
    assert done.returncode == 0 and "1 passed" in output, output[-3000:]

"""INT8 follows FP32 on an AVX2 CPU without VNNI, proved on any x86 machine by running the
fast tier's INT8 tests under QEMU's user-mode emulator as a Haswell (ONNX Runtime then dispatches
its AVX2 kernels, whose u8 x s8 pair sums saturate: the form chosen for that family must not
care). The interpreter is scripts/avx2_python.py's, so the processes a test starts (`python -m
edgecrystal score ...`) are emulated too, as on a real AVX2 machine; with plain `qemu-x86_64`
they would run natively and report the host's family. Slow: emulated, a model run costs 10-50x.
scripts/setup-services.sh installs qemu-user."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The fast tier's numeric INT8 checks: forms, the accuracy gate (its refusal checked in a child
# `edgecrystal score`), rank agreement and the calibration methods.
INT8_TESTS = ["tests/test_concat_split.py", "tests/test_int8_gate.py",
              "tests/test_verify_ranks.py", "tests/test_calibration_method.py"]


@pytest.mark.slow
def test_int8_tests_pass_on_an_emulated_avx2_cpu(tmp_path: Path) -> None:
    if shutil.which("qemu-x86_64") is None or platform.machine() != "x86_64":
        pytest.skip("needs qemu-x86_64 (Debian's qemu-user) on an x86_64 machine")
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "avx2_python.py"),
                           str(tmp_path / "avx2")], capture_output=True, text=True, check=True)
    python = made.stdout.strip()
    env = {**os.environ, "EDGECRYSTAL_BLOCK_TF": "1"}
    env.pop("EDGECRYSTAL_CPU_FAMILY", None)
    done = subprocess.run(
        [python, "-m", "pytest", *INT8_TESTS, "-p", "no:cacheprovider", "-o", "addopts=",
         "-rfE"], cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    output = done.stdout + done.stderr
    assert "edgecrystal cpu family: x86-avx2" in output, output[-3000:]
    assert "TCG doesn't support" not in output, output[-3000:]  # children's stderr stays clean
    assert done.returncode == 0 and " passed" in output, output[-3000:]

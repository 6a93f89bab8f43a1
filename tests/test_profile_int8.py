"""`edgecrystal profile` on a real bundle: ONNX Runtime's profiler, real sessions, real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _profile(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGECRYSTAL_BLOCK_TF="1")  # the profile must not need TensorFlow
    return subprocess.run([sys.executable, "-m", "edgecrystal", "profile", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


def test_profile_splits_run_time_by_operator(fast_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    done = _profile(str(fast_bundle), "--runs", "4", "--warmup", "1", "--json", str(out))
    assert done.returncode == 0, done.stderr
    figures = json.loads(out.read_text())
    assert set(figures) == {"finder/int8", "finder/fp32", "classifier/int8", "classifier/fp32"}
    for name, profile in figures.items():
        assert profile["runs"] == 4
        types = {row["op_type"]: row for row in profile["op_types"]}
        # Per-type times add up to the kernel time, and kernels fit inside the whole run.
        assert sum(row["ms"] for row in types.values()) == pytest.approx(profile["kernel_ms"])
        assert 0 < profile["kernel_ms"] <= profile["run_ms"] * 1.05, name
        assert sum(row["share"] for row in profile["op_types"]) == pytest.approx(1.0)
        assert profile["nodes"][0]["ms"] >= profile["nodes"][-1]["ms"]
    # The INT8 classifier's convolution runs as an integer kernel, the FP32 one as Conv.
    int8_types = {row["op_type"] for row in figures["classifier/int8"]["op_types"]}
    fp32_types = {row["op_type"] for row in figures["classifier/fp32"]["op_types"]}
    assert any(t.startswith("QLinear") or t.endswith("Integer") for t in int8_types), int8_types
    assert "Conv" not in int8_types and ("Conv" in fp32_types or "FusedConv" in fp32_types)
    assert "=== classifier int8" in done.stdout and "top 10 nodes" in done.stdout


def test_profile_refuses_a_missing_precision_in_one_line(fast_bundle: Path) -> None:
    done = _profile(str(fast_bundle), "--precision", "int4", "--runs", "1")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "no int4 ONNX" in done.stderr

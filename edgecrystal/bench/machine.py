"""What machine a benchmark ran on, and how fast it can multiply: the floor of every figure."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("edgecrystal", "numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu",
             "tensorflow-cpu", "tensorflow", "keras", "tensorrt", "cuda-python", "pycuda")


def describe() -> dict[str, Any]:
    """CPU, memory, OS, GPU (where one is visible) and library versions, for the report's JSON."""
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "gpu": _gpu(),
        "jetson": _jetson_model(),
        "libraries": _versions(),
    }


def measure_cpu_peak_gflops(size: int = 1024, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate numpy's BLAS reaches here, in GFLOP/s (all threads).

    This is the practical ceiling a convolution network can approach on this CPU in FP32; the
    report divides a model's FLOPs by it to give each backend's floor latency.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a @ b  # warm the BLAS threads
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def measure_cpu_int8_peak_gops(size: int = 1024, repeats: int = 5) -> float | None:
    """Best 8-bit integer matrix-multiply rate ONNX Runtime reaches here, in GOP/s (all threads).

    One MatMulInteger of uint8 activations by constant int8 weights: the kernel family (MLAS
    QGEMM, the VNNI/AVX-512 path where the CPU has one) that runs the INT8 models' convolutions,
    so it is their ceiling the way the BLAS matmul is FP32's. Measured in a child Python
    (edgecrystal.bench.int8_peak): building the graph needs the onnx package, which a bench of
    the runtime backends never loads. None where that fails (no onnx or onnxruntime here).
    """
    try:
        done = subprocess.run([sys.executable, "-m", "edgecrystal.bench.int8_peak", str(size),
                               str(repeats)], capture_output=True, text=True, timeout=300,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return float(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _gpu() -> str | None:
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def _jetson_model() -> str | None:
    path = Path("/proc/device-tree/model")
    try:
        return path.read_text().strip("\x00\n ") if path.is_file() else None
    except OSError:
        return None


def _versions() -> dict[str, str]:
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found

"""`edgecrystal doctor`: what this machine can run, one line per part: CPU and its instruction
set, ONNX Runtime and its providers, the GPU and the CUDA binding, TensorRT and its JetPack row
of the version matrix (engines.versions), DLA, and which backends `--backend auto` can use.
Nothing here needs a GPU: a part that is missing says why, as the refusals do."""

from __future__ import annotations

import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgecrystal.engines.device import DeviceIdentity


def cpu_line(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> str:
    """The CPU, its INT8 instruction-set family and the flags that decide it: the family
    build-engines makes the ONNX Runtime INT8 variant for (edgecrystal.cpu_isa)."""
    from edgecrystal import cpu_isa

    return f"cpu: {machine or platform.machine()} {cpu_isa.detect(cpuinfo, machine).describe()}"


def report() -> list[str]:
    import onnxruntime as ort

    from edgecrystal.engines import dla, versions
    from edgecrystal.engines.device import probe_gpu
    from edgecrystal.engines.manifest import hardware_compat_problem
    from edgecrystal.engines.tensorrt_module import tensorrt_version
    from edgecrystal.runtime.ort_tensorrt import unavailable_reason

    lines = [f"python: {platform.python_version()} ({sys.executable})", cpu_line()]
    providers = ", ".join(p.replace("ExecutionProvider", "") for p in
                          ort.get_available_providers())
    lines.append(f"onnxruntime: {ort.__version__} providers {providers}")
    probe = probe_gpu()
    identity = probe.identity
    if identity is None:
        lines.append(f"gpu: none ({probe.reason})")
    else:
        driver, cc = int(identity["cuda_driver"]), str(identity["compute_capability"])
        jetson = " (Jetson)" if versions.is_jetson(cc) else ""
        lines.append(f"gpu: {identity['gpu']} sm{cc.replace('.', '')}{jetson}, driver CUDA "
                     f"{driver // 1000}.{driver % 1000 // 10}, through {probe.binding}")
    trt = tensorrt_version()
    row = versions.release_for(trt)
    if trt is None:
        lines.append("tensorrt: not importable here")
    else:
        jetpack = (f"JetPack {row.jetpack} line (CUDA {row.cuda}, extra "
                   f"{row.extra or 'none'})" if row else "no JetPack row")
        lines.append(f"tensorrt: {trt} ({jetpack})")
    lines.append(f"dla: {_dla_line(trt, identity, dla, versions)}")
    if identity is not None and trt is not None:
        compat = hardware_compat_problem({**identity, "tensorrt": trt})
        lines.append(f"hardware-compatible engines: {compat or 'can build and load them'}")
    no_gpu = None if identity is not None else "no GPU"
    trt_problem = no_gpu or (None if trt else "TensorRT is not importable")
    ort_problem = unavailable_reason() or no_gpu
    for name, problem in (("tensorrt", trt_problem), ("onnxruntime-trt", ort_problem)):
        lines.append(f"backend {name}: {'no (' + problem + ')' if problem else 'yes'}")
    lines.append("backend onnxruntime (CPU): yes")
    return lines


def _dla_line(trt: str | None, identity: DeviceIdentity | None, dla: Any,
              versions: Any) -> str:
    if trt is None or identity is None:
        return "unknown without TensorRT and a GPU"
    problem = versions.dla_problem(trt)
    if problem:
        return f"not with this TensorRT: {problem}"
    cores = dla.count_cores()
    if isinstance(cores, str):
        return cores
    if cores == 0:
        return "this board has no DLA core (Orin Nano, Thor and desktop GPUs have none)"
    return f"{cores} core(s): build-engines --dla-core 0..{cores - 1}"

"""Which GPU this is, for engine folders and manifests: name, compute capability, TensorRT
version and driver version, through cuda-python and, where cuda-python is missing or answers
with an error (a driver too old for it, most often), through pycuda."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypedDict

from edgecrystal.errors import BackendError

from .cuda_binding import cuda_runtime, pycuda_driver, value_of
from .tensorrt_module import load_tensorrt

log = logging.getLogger(__name__)


class DeviceIdentity(TypedDict):
    """This GPU as engine folders and engine.json name it."""

    gpu: str  # "Orin (nvgpu)", "NVIDIA GeForce RTX 4090"
    compute_capability: str  # "8.7"
    tensorrt: str | None  # "10.3.0"; None from probe_gpu, which does not ask TensorRT
    cuda_driver: int  # cudaDriverGetVersion's 12060


@dataclass
class DeviceProbe:
    """What the probe found: the identity, or None and every reason it has none."""

    identity: DeviceIdentity | None
    binding: str = ""  # "cuda-python" | "pycuda" | ""
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "no reason recorded"


def probe_device(device: int = 0) -> DeviceProbe:
    try:
        trt = load_tensorrt()
    except BackendError as exc:
        return DeviceProbe(None, reasons=[str(exc)])
    probe = probe_gpu(device)
    if probe.identity is not None:
        probe.identity["tensorrt"] = str(trt.__version__)
    return probe


def probe_gpu(device: int = 0) -> DeviceProbe:
    """The GPU alone (no TensorRT needed): name, compute capability and driver version through
    cuda-python, else pycuda. `edgecrystal gpu-check` uses it on machines without TensorRT."""
    reasons: list[str] = []
    for binding, read in (("cuda-python", _cuda_python_properties),
                          ("pycuda", _pycuda_properties)):
        try:
            name, major, minor, driver = read(device)
        except BackendError as exc:
            reasons.append(str(exc))
            continue
        if reasons:
            log.info("GPU identified through %s after: %s", binding, "; ".join(reasons))
        identity: DeviceIdentity = {"gpu": name, "compute_capability": f"{major}.{minor}",
                                    "tensorrt": None, "cuda_driver": driver}
        return DeviceProbe(identity, binding, reasons)
    return DeviceProbe(None, reasons=reasons)


def device_identity(device: int = 0) -> DeviceIdentity | None:
    """{"gpu", "compute_capability" ("8.7"), "tensorrt" ("10.3.0"), "cuda_driver"} of this
    machine, or None when there is no TensorRT or no GPU either binding can see."""
    return probe_device(device).identity


def _cuda_python_properties(device: int) -> tuple[str, int, int, int]:
    runtime = cuda_runtime()
    if runtime is None:
        raise BackendError("cuda-python is not installed")
    try:
        count = value_of(runtime, runtime.cudaGetDeviceCount(), "cudaGetDeviceCount")
        if count <= device:
            raise BackendError(f"cuda-python sees {count} GPU(s), no device {device}")
        props = value_of(runtime, runtime.cudaGetDeviceProperties(device),
                         "cudaGetDeviceProperties")
        driver = value_of(runtime, runtime.cudaDriverGetVersion(), "cudaDriverGetVersion")
    except (OSError, RuntimeError) as exc:  # the runtime library itself did not load
        raise BackendError(f"cuda-python cannot load the CUDA runtime ({exc})") from None
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return str(name).rstrip("\x00"), int(props.major), int(props.minor), int(driver)


def _pycuda_properties(device: int) -> tuple[str, int, int, int]:
    driver = pycuda_driver()
    if driver is None:
        raise BackendError("pycuda is not installed")
    try:
        driver.init()
        count = driver.Device.count()
        if count <= device:
            raise BackendError(f"pycuda sees {count} GPU(s), no device {device}")
        gpu = driver.Device(device)
        major, minor = gpu.compute_capability()
        return str(gpu.name()), int(major), int(minor), int(driver.get_driver_version())
    except BackendError:
        raise
    except Exception as exc:  # pycuda's own error classes (LogicError, RuntimeError...)
        raise BackendError(f"pycuda cannot use the GPU ({exc})") from None

"""The GPU check that needs no TensorRT (`edgecrystal gpu-check`): on a machine with an NVIDIA GPU
and cuda-python (cuda-bindings), run the project's own CUDA memory path
(edgecrystal.runtime.cuda_memory: page-locked host buffers, a device buffer, one stream, events,
H2D and D2H copies, freeing) and its device identity (edgecrystal.engines.device), and give one
summary line. The line ends with what the Jetson paths find here: DLA cores through TensorRT
(Builder.num_DLA_cores, refused by version as build-engines refuses it) and whether onnxruntime
has its TensorRT provider (`--backend onnxruntime-trt`); neither is exercised beyond that.
"gpu-check ok: ..." when everything held; EdgeCrystalError (the command: "gpu-check FAILED: ...",
exit 1) else."""

from __future__ import annotations

from importlib import metadata

import numpy as np

from edgecrystal.engines.device import probe_gpu
from edgecrystal.errors import EdgeCrystalError
from edgecrystal.runtime.cuda_memory import CudaPython, open_cuda

MIB = 64


def binding_version() -> str:
    for name in ("cuda-bindings", "cuda-python"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "cuda-python (version unknown)"


def jetson_paths() -> str:
    from edgecrystal.engines.dla import count_cores
    from edgecrystal.engines.tensorrt_module import tensorrt_version
    from edgecrystal.engines.versions import dla_problem
    from edgecrystal.runtime.ort_tensorrt import unavailable_reason

    trt = tensorrt_version()
    if trt is None:
        dla = "dla: no TensorRT"
    elif dla_problem(trt):
        dla = f"dla: none with TensorRT {trt}"
    else:
        cores = count_cores()
        dla = (f"dla: {cores} core(s) (TensorRT {trt})" if isinstance(cores, int)
               else f"dla: unknown ({cores})")
    ort = "available" if unavailable_reason() is None else "not installed"
    return f"; {dla}; onnxruntime-trt: {ort}"


def check() -> str:
    """The one summary line; EdgeCrystalError saying what did not hold."""
    probe = probe_gpu()
    if probe.identity is None:
        raise EdgeCrystalError(f"no GPU identified: {probe.reason}")
    if probe.binding != "cuda-python":
        raise EdgeCrystalError(f"GPU identified through {probe.binding}, not cuda-python: "
                               f"{probe.reason}")
    cuda = open_cuda()
    if not isinstance(cuda, CudaPython):
        cuda.free()
        raise EdgeCrystalError("device memory fell back to pycuda")
    try:
        nbytes = MIB << 20
        device = cuda.malloc(nbytes)
        _, sent = cuda.host_empty(nbytes)
        _, back = cuda.host_empty(nbytes)
        sent[:] = np.random.default_rng(0).integers(0, 256, nbytes, dtype=np.uint8)
        back[:] = 0
        start, middle, end = cuda.event(), cuda.event(), cuda.event()
        cuda.record(start)
        cuda.h2d(device, sent, nbytes)
        cuda.record(middle)
        cuda.d2h(back, device, nbytes)
        cuda.record(end)
        cuda.synchronize()
        h2d_ms, d2h_ms = cuda.elapsed_ms(start, middle), cuda.elapsed_ms(middle, end)
        if not np.array_equal(sent, back):
            raise EdgeCrystalError("the bytes copied back differ from those sent")
    finally:
        cuda.free()
    identity = probe.identity
    major, minor = str(identity["compute_capability"]).split(".")
    driver = int(identity["cuda_driver"])
    return (f"gpu-check ok: {identity['gpu']} sm{major}{minor}, driver CUDA "
            f"{driver // 1000}.{driver % 1000 // 10}, {binding_version()} "
            f"({cuda.rt.__name__}); {MIB} MiB page-locked H2D "
            f"{h2d_ms:.2f} ms ({_gib_per_s(h2d_ms):.1f} GiB/s), D2H {d2h_ms:.2f} ms "
            f"({_gib_per_s(d2h_ms):.1f} GiB/s), round trip identical, all freed{jetson_paths()}")



def _gib_per_s(ms: float) -> float:
    return MIB / 1024 / (ms / 1000) if ms > 0 else float("inf")

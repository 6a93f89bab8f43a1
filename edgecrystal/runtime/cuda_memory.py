"""Device memory, page-locked host buffers, one stream and timing events for the TensorRT runner.

cuda-python is what NVIDIA's samples use now (`cuda.bindings.runtime` from cuda-bindings 12.8
and in 13.x, `cuda.cudart` in 12.0 to 12.7: edgecrystal.engines.cuda_binding finds it); pycuda is
the fallback where cuda-python is missing or answers with an error (cuda-python 13 on a driver
older than 580 answers cudaErrorInsufficientDriver to every call). Both sit behind the same
calls here so the runner stays thin. All of it belongs to the thread that created it.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ..engines.cuda_binding import cuda_runtime, value_of
from ..errors import BackendError

log = logging.getLogger(__name__)


def open_cuda() -> Cuda:
    """cuda-python where it works, else pycuda; a BackendError naming both reasons otherwise."""
    reasons = []
    runtime = cuda_runtime()
    if runtime is None:
        reasons.append("cuda-python is not installed")
    else:
        try:
            return CudaPython(runtime)
        except BackendError as exc:
            reasons.append(str(exc))
    try:
        cuda: Cuda = PyCuda()
    except ImportError:
        reasons.append("pycuda is not installed")
    except Exception as exc:  # pycuda's own error classes: no driver, no device
        reasons.append(f"pycuda cannot use the GPU ({exc})")
    else:
        if reasons:
            log.info("device memory through pycuda: %s", "; ".join(reasons))
        return cuda
    raise BackendError("TensorRT needs cuda-python or pycuda for device memory, and neither "
                       f"works here: {'; '.join(reasons)}")


class Cuda(Protocol):
    """The calls the runner needs. Pointers are ints; host buffers are numpy views."""

    def malloc(self, nbytes: int) -> int: ...
    def host_empty(self, nbytes: int) -> tuple[int, np.ndarray]: ...
    def h2d(self, dst: int, src: np.ndarray, nbytes: int) -> None: ...
    def d2h(self, dst: np.ndarray, src: int, nbytes: int) -> None: ...
    def record(self, event: Any) -> None: ...
    def synchronize(self) -> None: ...
    def elapsed_ms(self, start: Any, end: Any) -> float: ...
    def event(self) -> Any: ...
    def free(self) -> None: ...
    stream_handle: int = 0


class CudaPython(Cuda):
    def __init__(self, rt: ModuleType) -> None:
        self.rt = rt
        self._device: list[int] = []
        self._host: list[int] = []
        self._events: list[object] = []  # cudaEvent_t handles, destroyed by free()
        self.stream: Any = self._ok(rt.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self.stream)

    def _ok(self, ret: Any, what: str) -> Any:
        """cuda-python answers `(err, value...)` and never raises: check err on every call."""
        return value_of(self.rt, ret, what)

    def malloc(self, nbytes: int) -> int:
        ptr = int(self._ok(self.rt.cudaMalloc(max(1, nbytes)), "cudaMalloc"))
        self._device.append(ptr)
        return ptr

    def host_empty(self, nbytes: int) -> tuple[int, np.ndarray]:
        # Page-locked: the DMA engine copies straight from it, asynchronously on our stream.
        ptr = int(self._ok(self.rt.cudaMallocHost(max(1, nbytes)), "cudaMallocHost"))
        self._host.append(ptr)
        view = np.ctypeslib.as_array((ctypes.c_uint8 * max(1, nbytes)).from_address(ptr))
        return ptr, view

    def h2d(self, dst: int, src: np.ndarray, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        ret = self.rt.cudaMemcpyAsync(dst, src.ctypes.data, nbytes, kind, self.stream)
        self._ok(ret, "H2D copy")

    def d2h(self, dst: np.ndarray, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        ret = self.rt.cudaMemcpyAsync(dst.ctypes.data, src, nbytes, kind, self.stream)
        self._ok(ret, "D2H copy")

    def event(self) -> Any:
        ev = self._ok(self.rt.cudaEventCreate(), "cudaEventCreate")
        self._events.append(ev)
        return ev

    def record(self, event: Any) -> None:
        self._ok(self.rt.cudaEventRecord(event, self.stream), "cudaEventRecord")

    def synchronize(self) -> None:
        self._ok(self.rt.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(self._ok(self.rt.cudaEventElapsedTime(start, end), "cudaEventElapsedTime"))

    def free(self) -> None:
        """Everything this object allocated, once; errors are logged, not raised (a free at
        shutdown has nobody to tell)."""
        # (binding call, handle): device pointers, host pointers, events, the stream
        calls: list[tuple[Callable[[object], object], object]] = [
            (self.rt.cudaFree, ptr) for ptr in self._device]
        calls += [(self.rt.cudaFreeHost, ptr) for ptr in self._host]
        calls += [(self.rt.cudaEventDestroy, ev) for ev in self._events]
        if self.stream is not None:
            calls.append((self.rt.cudaStreamDestroy, self.stream))
        self._device, self._host, self._events, self.stream = [], [], [], None
        for call, handle in calls:
            try:
                self._ok(call(handle), call.__name__)
            except BackendError as exc:
                log.warning("%s", exc)


class PyCuda(Cuda):
    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401 - creates the context on this thread
        import pycuda.driver as drv

        self.drv = drv
        self.stream = drv.Stream()
        self.stream_handle = int(self.stream.handle)
        self._keep: list[object] = []  # device and page-locked buffers, alive until free()

    def malloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(max(1, nbytes))
        self._keep.append(mem)
        return int(mem)

    def host_empty(self, nbytes: int) -> tuple[int, np.ndarray]:
        buf = self.drv.pagelocked_empty(max(1, nbytes), np.uint8)
        self._keep.append(buf)
        return int(buf.ctypes.data), buf

    def h2d(self, dst: int, src: np.ndarray, nbytes: int) -> None:
        self.drv.memcpy_htod_async(dst, src.reshape(-1).view(np.uint8)[:nbytes], self.stream)

    def d2h(self, dst: np.ndarray, src: int, nbytes: int) -> None:
        self.drv.memcpy_dtoh_async(dst.reshape(-1).view(np.uint8)[:nbytes], src, self.stream)

    def event(self) -> Any:
        return self.drv.Event()

    def record(self, event: Any) -> None:
        event.record(self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def elapsed_ms(self, start: Any, end: Any) -> float:
        return float(start.time_till(end))

    def free(self) -> None:
        self._keep.clear()

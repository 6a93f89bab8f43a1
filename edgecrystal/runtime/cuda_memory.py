"""Device memory, page-locked host buffers, one stream and timing events for the TensorRT runner.

cuda-python is what NVIDIA's samples use now (`cuda.bindings.runtime` from 12.6/13, `cuda.cudart`
before); pycuda is the fallback where that is what a Jetson image has. Both sit behind the same
five calls here so the runner stays thin. All of it belongs to the thread that created it.
"""

from __future__ import annotations

import ctypes
from typing import Any, Protocol

import numpy as np

from ..errors import BackendError


def open_cuda() -> Cuda:
    try:
        from cuda.bindings import runtime as rt  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart as rt  # cuda-python 12.0 - 12.5
        except ImportError:
            rt = None
    if rt is not None:
        return CudaPython(rt)
    try:
        return PyCuda()
    except ImportError:
        raise BackendError("TensorRT needs cuda-python or pycuda for device memory: "
                           "pip install edgecrystal[tensorrt]") from None


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
    def __init__(self, rt: Any) -> None:
        self.rt = rt
        self._device: list[int] = []
        self._host: list[int] = []
        self._events: list[Any] = []
        self.stream = self._ok(rt.cudaStreamCreate(), "cudaStreamCreate")
        self.stream_handle = int(self.stream)

    def _ok(self, ret: Any, what: str) -> Any:
        err, *value = ret if isinstance(ret, tuple) else (ret,)
        if int(err) != 0:
            name = self.rt.cudaGetErrorString(err)[1]
            text = name.decode() if isinstance(name, bytes) else str(name)
            raise BackendError(f"CUDA {what} failed: {text}")
        return value[0] if len(value) == 1 else value

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
        for ptr in self._device:
            self.rt.cudaFree(ptr)
        for ptr in self._host:
            self.rt.cudaFreeHost(ptr)
        for ev in self._events:
            self.rt.cudaEventDestroy(ev)
        self.rt.cudaStreamDestroy(self.stream)
        self._device, self._host, self._events = [], [], []


class PyCuda(Cuda):
    def __init__(self) -> None:
        import pycuda.autoinit  # noqa: F401 - creates the context on this thread
        import pycuda.driver as drv

        self.drv = drv
        self.stream = drv.Stream()
        self.stream_handle = int(self.stream.handle)
        self._keep: list[Any] = []

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

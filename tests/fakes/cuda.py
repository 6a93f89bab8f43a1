"""A fake GPU (device memory as byte arrays, page-locked host memory as real host memory) and
fake cuda-python (12.x `cuda.cudart`, 12.9 / 13.x `cuda.bindings.runtime`) and pycuda modules
over it, built from the fixtures of the real bindings.

cuda-python's convention is kept: a call never raises for a CUDA error, it answers a tuple whose
first item is a cudaError_t member (`(err,)` or `(err, value)`). A binding for CUDA major M on a
driver older than M.0 answers cudaErrorInsufficientDriver to every call but the version and
error-name queries, as the real one does on JetPack 6 / pre-580 drivers with cuda-python 13.
"""

from __future__ import annotations

import ctypes
import itertools
import sys
import time
import types
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .surface import create, load_fixture, make_class, make_enum


@dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    major: int = 8
    minor: int = 9
    driver: int = 12060  # what cudaDriverGetVersion answers: 12.6
    present: bool = True
    dla_cores: int = 0  # DLA cores of the board: 2 on Orin NX 16GB / AGX Orin, 0 on Orin Nano
    device: dict[int, bytearray] = field(default_factory=dict)
    host: dict[int, Any] = field(default_factory=dict)
    streams: set[int] = field(default_factory=set)
    events: dict[int, float | None] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: {"timed": 0, "reused": 0,
                                                           "calibration_batches": 0})
    log: list[str] = field(default_factory=list)
    _handles: Any = field(default_factory=lambda: itertools.count(0x1000, 0x10))
    _addresses: Any = field(default_factory=lambda: itertools.count(0x7F00_0000_0000, 1 << 24))

    @property
    def sm(self) -> tuple[int, int]:
        return self.major, self.minor

    def malloc(self, nbytes: int) -> int:
        address = next(self._addresses)
        self.device[address] = bytearray(nbytes)
        return address

    def free(self, address: int) -> bool:
        return self.device.pop(address, None) is not None

    def handle(self) -> int:
        return next(self._handles)

    def region(self, address: int, nbytes: int) -> memoryview:
        """The device bytes at [address, address + nbytes), inside one allocation."""
        for start, block in self.device.items():
            if start <= address and address + nbytes <= start + len(block):
                return memoryview(block)[address - start : address - start + nbytes]
        raise ValueError(f"device range {address:#x}+{nbytes} is not allocated")

    def live(self) -> dict[str, int]:
        """What is still allocated: the tests' leak check."""
        return {"device": len(self.device), "host": len(self.host),
                "streams": len(self.streams), "events": len(self.events)}


# ----------------------------------------------------------------- cuda-python
class _Runtime:
    """Behaviour of the runtime functions the project calls, over a FakeGpu."""

    def __init__(self, gpu: FakeGpu, major: int, errors: Any, kinds: Any, classes: dict) -> None:
        self.gpu, self.major, self.errors, self.kinds, self.classes = (gpu, major, errors, kinds,
                                                                       classes)

    def _blocked(self) -> Any:
        if self.gpu.driver < self.major * 1000:
            return self.errors.cudaErrorInsufficientDriver
        if not self.gpu.present:
            return self.errors.cudaErrorNoDevice
        return None

    def _ok(self, *values: Any) -> tuple[Any, ...]:
        return (self.errors.cudaSuccess, *values)

    def cudaDriverGetVersion(self) -> tuple:
        return self._ok(self.gpu.driver if self.gpu.present else 0)

    def cudaRuntimeGetVersion(self) -> tuple:
        return self._ok(self.major * 1000 + 60)

    def cudaGetErrorName(self, error: Any) -> tuple:
        return self._ok(error.name.encode())

    def cudaGetErrorString(self, error: Any) -> tuple:
        return self._ok(f"fake description of {error.name}".encode())

    def cudaGetDeviceCount(self) -> tuple:
        blocked = self._blocked()
        return (blocked, 0) if blocked else self._ok(1)

    def cudaGetDeviceProperties(self, device: int) -> tuple:
        blocked = self._blocked()
        if blocked:
            return blocked, None
        if device != 0:
            return self.errors.cudaErrorInvalidDevice, None
        props = create(self.classes["cudaDeviceProp"])
        object.__setattr__(props, "_fake_prop_name", self.gpu.name.encode())
        object.__setattr__(props, "_fake_prop_major", self.gpu.major)
        object.__setattr__(props, "_fake_prop_minor", self.gpu.minor)
        return self._ok(props)

    def cudaSetDevice(self, device: int) -> tuple:
        return (self._blocked() or self.errors.cudaSuccess,)

    def cudaMalloc(self, size: int) -> tuple:
        blocked = self._blocked()
        return (blocked, 0) if blocked else self._ok(self.gpu.malloc(int(size)))

    def cudaFree(self, devPtr: int) -> tuple:
        ok = self.gpu.free(int(devPtr))
        return (self.errors.cudaSuccess if ok else self.errors.cudaErrorInvalidValue,)

    def cudaMallocHost(self, size: int) -> tuple:
        blocked = self._blocked()
        if blocked:
            return blocked, 0
        buffer = ctypes.create_string_buffer(max(1, int(size)))
        address = ctypes.addressof(buffer)
        self.gpu.host[address] = buffer
        return self._ok(address)

    def cudaFreeHost(self, ptr: int) -> tuple:
        ok = self.gpu.host.pop(int(ptr), None) is not None
        return (self.errors.cudaSuccess if ok else self.errors.cudaErrorInvalidValue,)

    def _handle(self, kind: str, table: Any) -> tuple:
        blocked = self._blocked()
        if blocked:
            return blocked, None
        handle = create(self.classes[kind], handle=self.gpu.handle())
        if isinstance(table, dict):
            table[int(handle)] = None
        else:
            table.add(int(handle))
        return self._ok(handle)

    def cudaStreamCreate(self) -> tuple:
        return self._handle("cudaStream_t", self.gpu.streams)

    def cudaStreamDestroy(self, stream: Any) -> tuple:
        if int(stream) not in self.gpu.streams:
            return (self.errors.cudaErrorInvalidResourceHandle,)
        self.gpu.streams.discard(int(stream))
        return (self.errors.cudaSuccess,)

    def cudaStreamSynchronize(self, stream: Any) -> tuple:
        known = int(stream) in self.gpu.streams or int(stream) == 0
        return (self.errors.cudaSuccess if known else self.errors.cudaErrorInvalidResourceHandle,)

    def cudaEventCreate(self) -> tuple:
        return self._handle("cudaEvent_t", self.gpu.events)

    def cudaEventDestroy(self, event: Any) -> tuple:
        found = self.gpu.events.pop(int(event), "gone") != "gone"
        return (self.errors.cudaSuccess if found else self.errors.cudaErrorInvalidResourceHandle,)

    def cudaEventRecord(self, event: Any, stream: Any) -> tuple:
        if int(event) not in self.gpu.events:
            return (self.errors.cudaErrorInvalidResourceHandle,)
        self.gpu.events[int(event)] = time.perf_counter()
        return (self.errors.cudaSuccess,)

    def cudaEventElapsedTime(self, start: Any, end: Any) -> tuple:
        begin, finish = self.gpu.events.get(int(start)), self.gpu.events.get(int(end))
        if begin is None or finish is None:
            return self.errors.cudaErrorInvalidResourceHandle, 0.0
        return self._ok((finish - begin) * 1000.0)

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple:
        blocked = self._blocked()
        if blocked:
            return (blocked,)
        if kind not in (self.kinds.cudaMemcpyHostToDevice, self.kinds.cudaMemcpyDeviceToHost):
            return (self.errors.cudaErrorInvalidMemcpyDirection,)
        try:
            if kind == self.kinds.cudaMemcpyHostToDevice:
                self.gpu.region(int(dst), count)[:] = ctypes.string_at(int(src), count)
            else:
                data = bytes(self.gpu.region(int(src), count))
                ctypes.memmove(int(dst), data, count)
        except ValueError:
            return (self.errors.cudaErrorInvalidValue,)
        return (self.errors.cudaSuccess,)

    def cudaMemcpy(self, dst: int, src: int, count: int, kind: Any) -> tuple:
        return self.cudaMemcpyAsync(dst, src, count, kind, 0)


def _handle_behaviour() -> type:
    class Handle:
        # int(handle): inherited from driver.CUstream / CUevent in the real classes.
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            object.__setattr__(self, "_fake_handle", int(kwargs.get("init_value", 0)))

        def getPtr(self) -> int:
            return self._fake_handle

    return Handle


def cuda_python_module(gpu: FakeGpu, fixture: str, module_name: str) -> types.ModuleType:
    """The fake of `module_name` ("cuda.cudart" or "cuda.bindings.runtime") of `fixture`."""
    data = load_fixture(fixture)
    surface = data["modules"][module_name]
    label = f"{module_name} {data['version']}"
    module = types.ModuleType(module_name)
    enums = {name: make_enum(name, members) for name, members in surface["enums"].items()}
    handle = _handle_behaviour()
    classes: dict[str, type] = {}
    for name, record in surface["classes"].items():
        if name in enums:
            continue
        behaviour = handle if name in ("cudaStream_t", "cudaEvent_t") else None
        cls = make_class(name, record, (), behaviour, label)
        if behaviour is not None:
            cls.__int__ = lambda self: self._fake_handle  # type: ignore[attr-defined]
        classes[name] = cls
    major = int(str(data["version"]).split(".")[0])
    behaviour = _Runtime(gpu, major, enums["cudaError_t"], enums["cudaMemcpyKind"], classes)
    from .surface import checked

    for name, overloads in surface["functions"].items():
        impl = getattr(behaviour, name, None) if not name.startswith("_") else None
        setattr(module, name, checked(module_name, name, overloads, impl, label, False))
    for name, cls in {**enums, **classes}.items():
        setattr(module, name, cls)
    return module


def install_cuda_python(monkeypatch: Any, gpu: FakeGpu, version: str) -> None:
    """Make `import cuda...` find the fake of cuda-python `version` ("12.6", "12.9", "13.0")
    with the modules that version really has."""
    fixture = f"cuda-python-{version}"
    modules = load_fixture(fixture)["modules"]
    cuda = types.ModuleType("cuda")
    cuda.__path__ = []  # a package
    monkeypatch.setitem(sys.modules, "cuda", cuda)
    if "cuda.cudart" in modules:
        cudart = cuda_python_module(gpu, fixture, "cuda.cudart")
        cuda.cudart = cudart  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "cuda.cudart", cudart)
    else:
        monkeypatch.setitem(sys.modules, "cuda.cudart", None)
    if "cuda.bindings.runtime" in modules:
        bindings = types.ModuleType("cuda.bindings")
        bindings.__path__ = []
        runtime = cuda_python_module(gpu, fixture, "cuda.bindings.runtime")
        bindings.runtime = runtime  # type: ignore[attr-defined]
        cuda.bindings = bindings  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", runtime)
    else:
        monkeypatch.setitem(sys.modules, "cuda.bindings", None)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)


def hide(monkeypatch: Any, *names: str) -> None:
    """Make these modules not importable (ImportError), as on a machine without them."""
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


# ----------------------------------------------------------------- pycuda
class PyCudaError(RuntimeError):
    """pycuda._driver.Error stands in: pycuda raises its own classes."""


def pycuda_modules(gpu: FakeGpu) -> dict[str, types.ModuleType]:
    data = load_fixture("pycuda")
    label = f"pycuda {data['version']}"
    driver = types.ModuleType("pycuda.driver")
    state = {"initialised": False}

    def need_init() -> None:
        if not state["initialised"]:
            raise PyCudaError("cuInit has not been called")
        if not gpu.present:
            raise PyCudaError("cuDeviceGet failed: no CUDA-capable device is detected")

    class Device:
        def __init__(self, number: int) -> None:
            need_init()
            object.__setattr__(self, "_fake_number", number)

        @staticmethod
        def count() -> int:
            need_init()
            return 1

        def name(self) -> str:
            return gpu.name

        def compute_capability(self) -> tuple[int, int]:
            return gpu.sm

        def total_memory(self) -> int:
            return 24 << 30

    class DeviceAllocation:
        def __int__(self) -> int:
            return self._fake_address

        def free(self) -> None:
            gpu.free(self._fake_address)

    class Stream:
        def __init__(self, flags: int = 0) -> None:
            need_init()
            object.__setattr__(self, "_fake_handle", gpu.handle())
            gpu.streams.add(self._fake_handle)

        handle = property(lambda self: self._fake_handle)

        def synchronize(self) -> None:
            return None

    class Event:
        def __init__(self, flags: int = 0) -> None:
            object.__setattr__(self, "_fake_time", None)

        def record(self, stream: Any = None) -> Any:
            object.__setattr__(self, "_fake_time", time.perf_counter())
            return self

        def synchronize(self) -> Any:
            return self

        def time_till(self, end: Any) -> float:
            return (end._fake_time - self._fake_time) * 1000.0

    behaviours = {"Device": Device, "DeviceAllocation": DeviceAllocation, "Stream": Stream,
                  "Event": Event}
    classes = {}
    for name, members in data["classes"].items():
        record = {"methods": {m: [["*args", "**kwargs"]] for m in members
                              if not isinstance(getattr(behaviours.get(name), m, None),
                                                (property, staticmethod))},
                  "static": {m: [["*args", "**kwargs"]] for m in members
                             if isinstance(behaviours.get(name, object).__dict__.get(m),
                                           staticmethod)},
                  "properties": {m: {"readonly": True} for m in members
                                 if isinstance(getattr(behaviours.get(name), m, None),
                                               property)}}
        if name == "Device":
            record["methods"]["__init__"] = [["number"]]
        if name in ("Stream", "Event"):
            record["methods"]["__init__"] = [["flags=0"]]
        classes[name] = make_class(name, record, (), behaviours.get(name), label)
        setattr(driver, name, classes[name])

    def init(flags: int = 0) -> None:
        if gpu.driver < 11000:
            raise PyCudaError("cuInit failed: CUDA driver version is insufficient")
        state["initialised"] = True

    def get_driver_version() -> int:
        return gpu.driver

    def mem_alloc(bytes: int) -> Any:
        need_init()
        return create(classes["DeviceAllocation"], address=gpu.malloc(int(bytes)))

    def pagelocked_empty(shape: Any, dtype: Any, order: str = "C", mem_flags: int = 0) -> Any:
        need_init()
        return np.empty(shape, dtype, order=order)

    def memcpy_htod_async(dest: Any, src: Any, stream: Any = None) -> None:
        data = np.ascontiguousarray(src).tobytes()
        gpu.region(int(dest), len(data))[:] = data

    def memcpy_dtoh_async(dest: Any, src: Any, stream: Any = None) -> None:
        target = np.asarray(dest).reshape(-1).view(np.uint8)
        target[:] = np.frombuffer(bytes(gpu.region(int(src), target.nbytes)), np.uint8)

    functions = {f.__name__: f for f in (init, get_driver_version, mem_alloc, pagelocked_empty,
                                         memcpy_htod_async, memcpy_dtoh_async)}
    from .surface import checked

    for name in data["functions"]:
        setattr(driver, name, checked("pycuda.driver", name, [["*args", "**kwargs"]],
                                      functions.get(name), label, False))
    driver.Error = PyCudaError  # type: ignore[attr-defined]

    package = types.ModuleType("pycuda")
    package.__path__ = []
    package.driver = driver  # type: ignore[attr-defined]
    autoinit = types.ModuleType("pycuda.autoinit")
    return {"pycuda": package, "pycuda.driver": driver, "pycuda.autoinit": autoinit,
            "_init": types.SimpleNamespace(run=lambda: (driver.init(), driver.Device(0)))}


def install_pycuda(monkeypatch: Any, gpu: FakeGpu) -> None:
    modules = pycuda_modules(gpu)
    init = modules.pop("_init")
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    # `import pycuda.autoinit` initialises the driver and makes a context; it raises where
    # there is no usable GPU. Re-importing is what the runner does, so run it at install.
    monkeypatch.setattr(modules["pycuda.autoinit"], "context", None, raising=False)
    try:
        init.run()
    except PyCudaError:
        # A failing autoinit: importing it raises, as the real module does.
        monkeypatch.setitem(sys.modules, "pycuda.autoinit", None)

"""TensorRT runner: one deserialized engine, one execution context, one stream.

Tensor-name API (TensorRT 8.5+: set_input_shape / set_tensor_address / execute_async_v3).
Buffers are allocated once for the profile's largest batch: page-locked host buffers, device
buffers through cuda-python (or pycuda), one stream, and CUDA events around the three steps so
each call records H2D / compute / D2H milliseconds (`last_timings`) for the bench. Batches over
the profile maximum are split by the Runner base class. The CUDA context and everything here
belong to the thread that creates the runner: create it on the thread that runs inference.

Whether an engine may be loaded at all (GPU and TensorRT version match its manifest) is decided
before this class is reached, in runtime.select. A DLA engine gets its core set on the runtime
before deserializing (Runtime.DLA_core); its profile is static (min = max), so a shorter batch is
padded to it and the padding's outputs dropped. `describe` says where the layers run: the
manifest's placement (IBuilderConfig.can_run_on_DLA at build time) and the engine inspector's
count of engine layers (after fusion) where the version has one.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from ..engines.dla import describe_placement
from ..engines.tensorrt_module import load_tensorrt
from ..errors import BackendError
from .base import Runner, TensorInfo
from .cuda_memory import open_cuda


class TensorRTRunner(Runner):
    backend = "tensorrt"

    def __init__(self, engine_path: str | os.PathLike[str], *, dla_core: int | None = None,
                 placement: dict[str, Any] | None = None) -> None:
        super().__init__(str(engine_path))
        trt = load_tensorrt()
        self.trt = trt
        self.dla_core = dla_core
        self.placement = placement
        try:
            with open(self.path, "rb") as fh:
                plan = fh.read()
        except OSError as exc:
            raise BackendError(f"cannot read engine {self.path}: {exc.strerror}") from None
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        if dla_core is not None:
            runtime.DLA_core = dla_core
        # TensorRT logs why (version, GPU, corrupt file) and answers None: one line here.
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BackendError(f"TensorRT {trt.__version__} could not deserialize {self.path} "
                               "(corrupt, or built by another TensorRT version or for another "
                               "GPU); rebuild it with `edgecrystal build-engines --force`")
        self.cuda = open_cuda()
        try:
            self._open_context()
        except BaseException:
            self.cuda.free()  # the buffers allocated before the failure
            raise
        self.active = True  # loaded here: --backend auto must see a failure while choosing

    def _open_context(self) -> None:
        trt = self.trt
        self.context = self.engine.create_execution_context()
        self.last_timings: dict[str, float] = {}
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = [self._info(n) for n in names if is_input[n]]
        self.outputs = [self._info(n) for n in names if not is_input[n]]
        # The batches the first optimisation profile accepts (one static batch for DLA).
        min_shape, _, max_shape = self.engine.get_tensor_profile_shape(self.inputs[0].name, 0)
        fixed = self.inputs[0].shape[0]
        self.max_batch = int(max_shape[0]) if fixed is None else int(fixed)
        self.min_batch = int(min_shape[0]) if fixed is None else int(fixed)
        self.engine_layers = self._count_engine_layers()
        self._alloc()
        self._events = [self.cuda.event() for _ in range(4)]

    def _info(self, name: str) -> TensorInfo:
        shape = tuple(int(d) if d >= 0 else None for d in self.engine.get_tensor_shape(name))
        dtype = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(name)))
        return TensorInfo(name, shape, dtype)

    def _alloc(self) -> None:
        self._buffers: dict[str, tuple[int, np.ndarray, int]] = {}
        for info in (*self.inputs, *self.outputs):
            per_item = int(np.prod([d for d in info.shape[1:] if d is not None])) \
                * info.dtype.itemsize
            if any(d is None for d in info.shape[1:]):
                raise BackendError(f"{self.path}: tensor {info.name} has dynamic non-batch "
                                   "dimensions; edgecrystal engines have fixed image sizes")
            nbytes = per_item * int(self.max_batch or 1)
            device = self.cuda.malloc(nbytes)
            _, host = self.cuda.host_empty(nbytes)
            self._buffers[info.name] = (device, host, per_item)
            self.context.set_tensor_address(info.name, device)

    def _count_engine_layers(self) -> int | None:
        """Layers of the built engine (after fusion) from the engine inspector; None where this
        version or this engine cannot say."""
        try:
            inspector = self.engine.create_engine_inspector()
            text = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
            return len(json.loads(text)["Layers"])
        except Exception:  # an inspector is a report, never a reason not to serve
            return None

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(feed.values())).shape[0]
        if n >= self.min_batch:
            return self._run_batch(feed)
        # A static (DLA) profile takes exactly min_batch: pad with zeros, keep the first n.
        padded = {k: np.concatenate([v, np.zeros((self.min_batch - n, *v.shape[1:]), v.dtype)])
                  for k, v in feed.items()}
        return {k: v[:n] for k, v in self._run_batch(padded).items()}

    def _run_batch(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(feed.values())).shape[0]
        ev = self._events
        self.cuda.record(ev[0])
        for info in self.inputs:
            arr = feed[info.name]
            device, host, per_item = self._buffers[info.name]
            nbytes = per_item * n
            host[:nbytes] = arr.reshape(-1).view(np.uint8)
            if not self.context.set_input_shape(info.name, arr.shape):
                raise BackendError(f"{self.path}: input shape {tuple(arr.shape)} is outside "
                                   f"the engine's profile (batch 1..{self.max_batch})")
            self.cuda.h2d(device, host, nbytes)
        self.cuda.record(ev[1])
        if not self.context.execute_async_v3(self.cuda.stream_handle):
            raise BackendError(f"TensorRT execution failed for {self.path}")
        self.cuda.record(ev[2])
        shapes: dict[str, tuple[int, ...]] = {}
        for info in self.outputs:
            device, host, per_item = self._buffers[info.name]
            shapes[info.name] = tuple(self.context.get_tensor_shape(info.name))
            self.cuda.d2h(host, device, per_item * n)
        self.cuda.record(ev[3])
        self.cuda.synchronize()
        self.last_timings = {"h2d_ms": self.cuda.elapsed_ms(ev[0], ev[1]),
                             "compute_ms": self.cuda.elapsed_ms(ev[1], ev[2]),
                             "d2h_ms": self.cuda.elapsed_ms(ev[2], ev[3])}
        result: dict[str, np.ndarray] = {}
        for info in self.outputs:
            _, host, per_item = self._buffers[info.name]
            # Copy out of the page-locked buffer: the next call overwrites it.
            view = host[: per_item * n].view(info.dtype).reshape(shapes[info.name])
            result[info.name] = view.copy()
        return result

    def describe(self) -> str:
        text = f"tensorrt {self.trt.__version__} max_batch={self.max_batch}"
        if self.dla_core is not None:
            placement = self.placement or {"device": f"dla{self.dla_core}"}
            text += f" on {describe_placement(placement)}"
        if self.engine_layers is not None:
            text += f" engine_layers={self.engine_layers}"
        return text

    def _close(self) -> None:
        del self.context
        del self.engine
        self.cuda.free()


"""The implicit INT8 calibrator for TensorRT < 10, for those who ask for it
(`build-engines --legacy-int8-calibrator`): TensorRT 10 deprecated and 11 removed implicit
calibration; the Q/DQ ONNX (calibration.quantize) is the way everywhere else.

It feeds the same preprocessed uint8 batches the Q/DQ calibration uses, through device memory
from cuda-python (pycuda as the fallback: edgecrystal.runtime.cuda_memory), and reads/writes a
calibration cache so a rebuild does not calibrate again. `close()` frees its device buffer and
stream: build_plan and engine_for call it when the build ends, however it ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgecrystal.engines.tensorrt_module import load_tensorrt
from edgecrystal.errors import BackendError

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from edgecrystal.engines.trt_types import IInt8Calibrator

BATCH = 8


def _base() -> Any:  # the binding's IInt8EntropyCalibrator2 class, subclassed below
    trt = load_tensorrt()
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise BackendError(f"TensorRT {trt.__version__} has no implicit INT8 calibrator; "
                           "use the Q/DQ INT8 ONNX")
    return base


def EntropyCalibrator(inputs: np.ndarray | None, cache: Path) -> IInt8Calibrator:
    """An IInt8EntropyCalibrator2 over `inputs` (N x H x W x 3 uint8; None: cache only)."""
    base = _base()

    class _Calibrator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            base.__init__(self)
            self.inputs = inputs
            self.cache = Path(cache)
            self.pos = 0
            self.cuda = None
            self.device = 0
            if inputs is not None and len(inputs):
                from edgecrystal.runtime.cuda_memory import open_cuda

                self.cuda = open_cuda()
                self.nbytes = int(inputs[:BATCH].nbytes)
                self.device = self.cuda.malloc(self.nbytes)

        def get_batch_size(self) -> int:
            return BATCH

        def get_batch(self, names: list[str]) -> list[int] | None:
            if self.inputs is None or self.cuda is None or self.pos >= len(self.inputs):
                return None
            batch = self.inputs[self.pos : self.pos + BATCH]
            self.pos += BATCH
            if len(batch) < BATCH:  # the profile's shape is fixed at BATCH during calibration
                pad = np.repeat(batch[-1:], BATCH - len(batch), axis=0)
                batch = np.concatenate([batch, pad])
            batch = np.ascontiguousarray(batch)
            self.cuda.h2d(self.device, batch, batch.nbytes)
            self.cuda.synchronize()
            return [self.device]

        def close(self) -> None:
            """Free the device buffer and the stream (idempotent)."""
            if self.cuda is not None:
                self.cuda.free()
                self.cuda = None
                self.device = 0

        def read_calibration_cache(self) -> bytes | None:
            return self.cache.read_bytes() if self.cache.is_file() else None

        def write_calibration_cache(self, data: Buffer) -> None:
            from edgecrystal.atomic import write_bytes

            self.cache.parent.mkdir(parents=True, exist_ok=True)
            write_bytes(self.cache, bytes(data))

    return _Calibrator()

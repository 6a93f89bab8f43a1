"""Which CUDA binding this machine has, and cuda-python's `(err, value)` convention.

cuda-python's runtime API lives in `cuda.bindings.runtime` from cuda-bindings 12.8 on (and only
there in 13.x); cuda-python 12.0 to 12.7 has `cuda.cudart` only (the 12.6.0 wheel has no
`cuda.bindings`). Its calls do not raise on CUDA errors: every call returns a tuple whose first
item is a `cudaError_t` (`(err,)` or `(err, value, ...)`). The one that matters most is
cudaErrorInsufficientDriver: cuda-python 13.x against a driver older than the 580 series (or any
JetPack 6, CUDA 12.2/12.6) answers every call with it, and pycuda (built against the driver API
the machine has) is then the way to the GPU.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, SupportsInt

from edgecrystal.errors import BackendError

SUCCESS = 0
INSUFFICIENT_DRIVER = 35  # cudaErrorInsufficientDriver, the same value in 12.x and 13.x
EXTRA_HINT = ("install the extra of this driver's CUDA major: edgecrystal[tensorrt-cu12] for "
              "JetPack 6 and drivers before 580, edgecrystal[tensorrt-cu13] for JetPack 7 and "
              "drivers 580+")


def cuda_runtime() -> ModuleType | None:
    """cuda-python's runtime API module, or None where cuda-python is not installed."""
    try:
        from cuda.bindings import runtime

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python 12.0 to 12.7 (gone in 13.0)

        return cudart
    except ImportError:
        return None


def pycuda_driver() -> ModuleType | None:
    try:
        import pycuda.driver as driver
    except ImportError:
        return None
    return driver


def error_name(runtime: ModuleType, err: SupportsInt) -> str:
    """'cudaErrorInsufficientDriver' for an error code (its number where the name is not had)."""
    try:
        code, name = runtime.cudaGetErrorName(err)
    except Exception:  # a binding that cannot even name its errors: the number will do
        return f"CUDA error {int(err)}"
    if int(code) != SUCCESS:
        return f"CUDA error {int(err)}"
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)


def describe_error(runtime: ModuleType, err: SupportsInt, what: str) -> str:
    """One line for a failed call, with what to do when the driver is too old."""
    text = f"cuda-python {what} failed: {error_name(runtime, err)}"
    if int(err) == INSUFFICIENT_DRIVER:
        text += f" (the driver is older than this cuda-python needs; {EXTRA_HINT})"
    return text


def value_of(runtime: ModuleType, answer: Any, what: str) -> Any:
    """The value of a cuda-python call's `(err, value...)` answer, or a BackendError."""
    err, *values = answer if isinstance(answer, tuple) else (answer,)
    if int(err) != SUCCESS:
        raise BackendError(describe_error(runtime, err, what))
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)

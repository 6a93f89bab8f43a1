"""One scoring session: a bundle opened for a backend and a precision, as a `Pipeline`.

`open_pipeline` is the one place where a bundle becomes runners and the runners become a
pipeline: `score` (plain, `--workers`, `--ray`), `serve`, `bench`, `verify`, `evaluate` and the
confidence fit all call it, so each of them runs exactly what the others run. The runners are
chosen here (runtime/select.py: backend, precision, the INT8 gate, TensorRT engines) but load
on first use (`Runner.activate`), so a caller that only needs the choice (the fingerprint of
what would score, the backend's description) pays nothing for the models; `Pipeline.activate`
loads them at once where a failure must show before any work (the daemon before READY=1).

The Keras reference (`backend="keras"`, edgecrystal/keras_backend.py) imports TensorFlow, and
the runtime path (the daemon calls this module) must never import it, not even inside a
function. So this module knows no Keras: a backend outside edgecrystal.runtime is plugged in
with `plug_backend` by the module that provides it, which the commands that offer it (bench,
verify, evaluate) import; the import contracts see every one of those imports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .bundle import Bundle
from .errors import BackendError
from .imageio import DEFAULT_MAX_PIXELS
from .interface import REFERENCE_BACKEND
from .pipeline import Pipeline
from .runtime.select import Selection, open_runners

# A backend outside edgecrystal.runtime: the bundle and precision in, the chosen runners out.
BackendOpener = Callable[[Bundle, str], Selection]
_PLUGGED: dict[str, BackendOpener] = {}


def plug_backend(name: str, opener: BackendOpener) -> None:
    """Make `name` a backend `open_pipeline` accepts, opened by `opener` (keras_backend.py)."""
    _PLUGGED[name] = opener


def open_pipeline(bundle: Bundle | Path | str, *, backend: str = "auto", precision: str = "fp32",
                  threads: int = 0, providers: list[str] | tuple[str, ...] | None = None,
                  dla: dict[str, int] | None = None, allow_build: bool = True,
                  progress: Callable[[str], None] | None = None, outlines: bool = False,
                  max_pixels: int = DEFAULT_MAX_PIXELS, read_threads: int = 2) -> Pipeline:
    """The bundle (an open `Bundle` or its folder) as a pipeline on `backend` at `precision`.

    backend: auto | onnxruntime | onnxruntime-trt | tensorrt (runtime/select.py says how auto
    chooses), or a plugged one (keras). threads and providers: ONNX Runtime's; dla: models on
    DLA cores ({"finder": 0}); allow_build: build a missing TensorRT engine (progress gets its
    lines); outlines: keep drop outlines and previews for overlays; max_pixels: the decoder's
    limit; read_threads: decoding threads. The pipeline's `selection` says what was chosen
    and why (and `fallback`, why another precision runs); close the pipeline when done."""
    opened = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
    selection = _select(opened, backend, precision, threads, providers, dla, allow_build,
                        progress)
    try:
        return Pipeline(opened, selection.finder, selection.classifier,
                        backend=selection.backend, precision=selection.precision,
                        max_pixels=max_pixels, read_threads=read_threads, outlines=outlines,
                        precision_fallback=selection.fallback, selection=selection,
                        crystals=selection.crystals)
    except BaseException:
        selection.close()
        raise


def _select(bundle: Bundle, backend: str, precision: str, threads: int,
            providers: list[str] | tuple[str, ...] | None, dla: dict[str, int] | None,
            allow_build: bool, progress: Callable[[str], None] | None) -> Selection:
    if backend in _PLUGGED:
        return _PLUGGED[backend](bundle, precision)
    if backend == REFERENCE_BACKEND:  # not plugged: this command does not offer it
        raise BackendError(f"the {backend} backend is the reference of bench, verify and "
                           "evaluate only, not of score or serve")
    return open_runners(bundle, backend=backend, precision=precision, threads=threads,
                        providers=list(providers) if providers is not None else None,
                        allow_build=allow_build, dla=dla, progress=progress)

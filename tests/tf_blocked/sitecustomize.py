"""Makes `import tensorflow`, `keras` and `tf2onnx` fail in every Python process that starts
with this folder on PYTHONPATH (tests/conftest.py puts it there when EDGECRYSTAL_BLOCK_TF=1), so
the fast tier's subprocesses (`edgecrystal score`, `serve`, `bench`) prove they need none of them.

Python imports `sitecustomize` at start-up from the first folder on sys.path that has one; this
one goes on to run the one it shadows (Debian's), so nothing else changes.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

BLOCKED = ("tensorflow", "keras", "tf2onnx")


class BlockTensorFlow(importlib.abc.MetaPathFinder):
    """First on sys.meta_path: refuses the blocked top-level packages and their submodules."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is blocked in the fast test tier "
                              "(EDGECRYSTAL_BLOCK_TF=1): this code path must not need it")
        return None


def install() -> None:
    if not any(isinstance(finder, BlockTensorFlow) for finder in sys.meta_path):
        sys.meta_path.insert(0, BlockTensorFlow())


def _run_shadowed_sitecustomize() -> None:
    import contextlib
    import importlib.util
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        if os.path.abspath(entry or ".") == here:
            continue
        candidate = os.path.join(entry or ".", "sitecustomize.py")
        if os.path.isfile(candidate):
            spec = importlib.util.spec_from_file_location("_shadowed_sitecustomize", candidate)
            if spec and spec.loader:
                # A broken system hook must not break the tests' processes.
                with contextlib.suppress(Exception):
                    spec.loader.exec_module(importlib.util.module_from_spec(spec))
            return


if __name__ == "sitecustomize":  # at interpreter start-up; conftest loads it by path instead
    install()
    _run_shadowed_sitecustomize()

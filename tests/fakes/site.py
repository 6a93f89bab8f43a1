"""A sitecustomize.py that installs the fakes in a child process (a real `serve` or
`edgecrystal gpu-check` run): the fakes on sys.path and the `Modules` stand-in for pytest's
monkeypatch, then `body`, which installs what the test needs."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
HEADER = f"""
import sys
sys.path.insert(0, {str(TESTS)!r})
from fakes.cuda import FakeGpu, install_cuda_python
from fakes.tensorrt import install_tensorrt


class Modules:
    def setitem(self, mapping, key, value):
        mapping[key] = value


"""


def write_sitecustomize(folder: Path, body: str) -> Path:
    """`folder`/sitecustomize.py: put `folder` first on the child's PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sitecustomize.py"
    path.write_text(HEADER + body)
    return path

"""The engine layer is TensorFlow-free and the serving path reaches no training code: every
import statement in edgecrystal/engines, edgecrystal/runtime and edgecrystal/daemon, including
those inside functions, and the modules a real import of them loads. What counts as forbidden is
edgecrystal/lean_runtime.py's one list, which .importlinter's contract repeats (checked here)."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

from edgecrystal.lean_runtime import FORBIDDEN, forbidden, loaded_forbidden

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "edgecrystal"
SERVING = ["edgecrystal.engines.store", "edgecrystal.engines.device", "edgecrystal.runtime.select",
           "edgecrystal.runtime.tensorrt_runner", "edgecrystal.runtime.onnxruntime_runner",
           "edgecrystal.daemon.service", "edgecrystal.calibration.trt_calibrator"]


def _imports(path: Path) -> list[str]:
    """Absolute names of every module `path` imports, wherever the statement stands."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_engines_runtime_and_daemon_import_no_training_code() -> None:
    offending = []
    for folder in ("engines", "runtime", "daemon"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            offending += [f"{path.relative_to(REPO)}: {name}" for name in _imports(path)
                          if forbidden(name) is not None]
    assert offending == []


def test_import_contract_forbids_the_one_list() -> None:
    contracts = configparser.ConfigParser()
    contracts.read(REPO / ".importlinter", encoding="utf-8")
    listed = contracts["importlinter:contract:lean-runtime"]["forbidden_modules"].split()
    assert sorted(listed) == sorted(FORBIDDEN)


def test_a_forbidden_entry_covers_its_submodules_and_nothing_else() -> None:
    # What the daemon's heavy_modules= line reports: a package's submodule counts as the
    # package, a name that only starts the same way does not.
    loaded = ["keras.src.layers", "kerastuner", "onnxruntime", "edgecrystal.converters.build",
              "edgecrystal.calibration.trt_calibrator", "edgecrystal.trainer", "numpy"]
    assert loaded_forbidden(loaded) == ["edgecrystal.converters", "keras"]


def test_nothing_imports_the_converters_from_the_engine_layer() -> None:
    # The old cycle: converters.build -> trt_build -> converters.build.
    for path in sorted((PACKAGE / "engines").glob("*.py")):
        assert not any("converters" in name for name in _imports(path)), path


def test_serving_modules_load_no_training_module() -> None:
    code = (f"for name in {SERVING!r}:\n"
            "    __import__(name)\n"
            "from edgecrystal.lean_runtime import loaded_forbidden\n"
            "loaded = loaded_forbidden()\n"
            "print(loaded)\n"
            "assert loaded == [], loaded\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

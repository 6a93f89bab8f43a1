"""Run lint-imports (the import contracts in .importlinter) and mypy on edgecrystal as installed.

Why a staging step: converters/ and calibration/ sit at the repository's top level but install as
edgecrystal.converters and edgecrystal.calibration (pyproject's package-dir). grimp (under
lint-imports) and mypy find a package by walking its folder, and neither reads setuptools'
package-dir, so from the source tree they would not see those two subpackages at all (and mypy
would call them missing imports). This script copies each package listed in pyproject's
[tool.setuptools] to where setuptools installs it, in a temporary folder, runs both tools there,
and maps the paths in their output back to the repository's files. Nothing is installed; the
tree is not changed.

Usage: python scripts/static_checks.py [imports|types ...]   (default: both)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def package_sources() -> dict[str, Path]:
    """{dotted package: its source folder}, as setuptools maps them: the longest package-dir
    entry that is the package or one of its parents gives the folder (edgecrystal.converters =
    converters, so edgecrystal.converters.rewrites = converters/rewrites)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    setuptools = config["tool"]["setuptools"]
    mapped: dict[str, str] = setuptools.get("package-dir", {})
    return {name: REPO / _source_folder(name, mapped) for name in setuptools["packages"]}


def _source_folder(name: str, mapped: dict[str, str]) -> str:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        parent = ".".join(parts[:cut])
        if parent in mapped:
            return "/".join([mapped[parent], *parts[cut:]])
    return "/".join(parts)


def stage(root: Path) -> dict[str, str]:
    """Copy every package's modules to root/<dotted path>; returns {staged folder: repo folder}
    (relative, with a trailing slash) for mapping output back."""
    back: dict[str, str] = {}
    for name, source in package_sources().items():
        target = root / name.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for module in source.glob("*.py"):
            shutil.copy2(module, target / module.name)
        staged_rel = name.replace(".", "/") + "/"
        back[staged_rel] = source.relative_to(REPO).as_posix() + "/"
    return back


def map_back(text: str, root: Path, back: dict[str, str]) -> str:
    text = text.replace(str(root) + os.sep, "")
    # Longest staged folder first: edgecrystal/converters/ before edgecrystal/.
    for staged in sorted(back, key=len, reverse=True):
        if staged != back[staged]:
            text = re.sub(rf"(?<![\w/]){re.escape(staged)}", back[staged], text)
    return text


def run(command: list[str], root: Path, back: dict[str, str]) -> int:
    # The staged copy comes first on the path, ahead of the editable install's finder.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                          check=False)
    sys.stdout.write(map_back(done.stdout, root, back))
    sys.stderr.write(map_back(done.stderr, root, back))
    return done.returncode


def main(argv: list[str]) -> int:
    if argv in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    checks = argv or ["imports", "types"]
    unknown = set(checks) - {"imports", "types"}
    if unknown:
        print(f"static_checks: unknown check {sorted(unknown)[0]!r} (imports, types)",
              file=sys.stderr)
        return 2
    failed = 0
    with tempfile.TemporaryDirectory(prefix="edgecrystal-staged-") as tmp:
        root = Path(tmp)
        back = stage(root)
        if "imports" in checks:
            failed |= run([str(BIN / "lint-imports"), "--no-logo", "--no-cache",
                           str(REPO / ".importlinter")], root, back)
        if "types" in checks:
            failed |= run([str(BIN / "mypy"), "--config-file", str(REPO / "pyproject.toml"),
                           "--cache-dir", str(REPO / ".mypy_cache"), "-p", "edgecrystal"],
                          root, back)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

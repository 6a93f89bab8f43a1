"""The installed layout: converters/ and calibration/ live at the repository's top level but
install as edgecrystal.converters and edgecrystal.calibration, and nothing generic lands at
the top level of site-packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(config["packages"])


def _package_folders() -> set[str]:
    """Every folder with an __init__.py, named as it installs."""
    mapping = {"edgecrystal": "edgecrystal", "converters": "edgecrystal.converters",
               "calibration": "edgecrystal.calibration"}
    found = set()
    for top, name in mapping.items():
        for init in (REPO / top).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / top)
            found.add(".".join([name, *relative.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    assert _package_folders() == _listed_packages()


def test_installed_names_are_namespaced() -> None:
    # Run from a folder outside the checkout so that only the installed mapping is seen.
    code = (
        "import importlib.util, edgecrystal.converters, edgecrystal.calibration\n"
        "assert importlib.util.find_spec('converters') is None, 'converters'\n"
        "assert importlib.util.find_spec('calibration') is None, 'calibration'\n"
        "print(edgecrystal.converters.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == REPO / "converters"


def test_every_module_is_in_a_layer_of_the_import_contracts() -> None:
    """A module left out of .importlinter's layers is checked by nothing: its imports could go
    anywhere. Every module and package directly under edgecrystal, as installed, is in one."""
    import configparser

    contracts = configparser.ConfigParser()
    contracts.read(REPO / ".importlinter")
    layers = contracts["importlinter:contract:layers"]["layers"]
    listed = {name.strip() for line in layers.split("\n") for name in line.split("|")} - {""}
    found = {path.stem for path in (REPO / "edgecrystal").iterdir()
             if (path.suffix == ".py" and not path.name.startswith("__"))
             or (path / "__init__.py").is_file()}
    assert found | {"converters", "calibration"} == listed

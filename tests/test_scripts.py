"""The development tools in scripts/ (scripts/README.md) keep working as the code under them
moves: each Python tool imports without TensorFlow and answers --help, and the TensorFlow-free
research baseline runs end to end on a small synthetic set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = sorted((REPO / "scripts").glob("*.py"))


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, EDGECRYSTAL_BLOCK_TF="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env=env, check=False, cwd=REPO)


def test_every_tool_is_listed_in_the_readme() -> None:
    readme = (REPO / "scripts" / "README.md").read_text()
    listed = {path.name for path in (REPO / "scripts").iterdir() if f"`{path.name}`" in readme}
    assert listed == {path.name for path in (REPO / "scripts").iterdir()} - {"README.md"}


# One child process for all tools (an interpreter per tool cost seconds): each runs as
# `python TOOL --help` would, a module without a command of its own (benchmark_markdown.py) is
# only loaded; prints the names of those that did not exit 0 and print their help.
HELP_ALL = """
import contextlib, io, runpy, sys
failed = []
for tool in sys.argv[1:]:
    is_command = "__main__" in open(tool, encoding="utf-8").read()
    sys.argv = [tool, "--help"]
    sys.path.insert(0, tool.rsplit("/", 1)[0])  # as `python TOOL` puts the tool's folder first
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(tool, run_name="__main__" if is_command else "tool")
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    except Exception as exc:
        code = repr(exc)
    if code != 0 or (is_command and not out.getvalue().strip()):
        failed.append(f"{tool}: {code}")
print("\\n".join(failed))
"""


def test_every_tool_answers_help_without_tensorflow() -> None:
    done = _run("-c", HELP_ALL, *map(str, TOOLS))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.slow  # seconds: an interpreter for synth and one for the baseline
def test_synth_baseline_runs_on_a_small_set(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    made = _run("-m", "edgecrystal", "synth", str(data), "--n", "24", "--seed", "3",
                "--size", "128")
    assert made.returncode == 0, made.stderr
    done = _run(str(REPO / "scripts" / "synth_baseline.py"), str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("baseline accuracy: train ")
    assert "(6 images)" in done.stdout.splitlines()[0]  # the held-out quarter


@pytest.mark.slow  # seconds: three INT8 quantizations in a child process
def test_int8_forms_measures_each_form_and_rewrite(fast_bundle: Path,
                                                   fast_calibration_data: Path) -> None:
    """scripts/int8_forms.py (docs/conversion.md's INT8-forms table) on the fast classifier:
    one row per form and rewrite left out, each with the gate's verdict."""
    model = fast_bundle / "onnx" / "classifier.fp32.onnx"
    done = _run(str(REPO / "scripts" / "int8_forms.py"), str(model), str(fast_calibration_data),
                "--calib", "4", "--held-out", "4", "--method", "minmax", "--forms",
                "s8s8,u8u8", "--skips", "none,channels_last")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| s8s8 (TensorRT's file)", "-"], ["| u8u8", "none"], ["| u8u8", "channels_last"]]
    assert all(row.endswith(("| pass |", "| fail |")) for row in rows)

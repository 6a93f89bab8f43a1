"""`edgecrystal synth` and `edgecrystal data check` as a user runs them: real subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def test_synth_then_check(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "set"  # missing parents are created
    r = run("synth", out, "--n", "8", "--seed", "1", "--size", "96", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert "wrote 8 images" in r.stdout
    assert len(list((out / "images").iterdir())) == 8
    report = tmp_path / "report.json"
    r = run("data", "check", out, "--json", report)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "usable" in r.stdout and "crystals" in r.stdout
    data = json.loads(report.read_text())
    assert data["usable"] and data["images"] == 8


def test_check_reports_errors_with_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert run("synth", out, "--n", "4", "--size", "96", "--workers", "1").returncode == 0
    sorted((out / "masks").iterdir())[0].unlink()
    r = run("data", "check", out, "--classes", "clear,crystals,precipitate,other")
    assert r.returncode == 1
    assert "mask missing" in r.stdout and "NOT usable" in r.stdout


def test_synth_plate(tmp_path: Path) -> None:
    r = run("synth", tmp_path / "plate", "--plate", "--n", "3", "--style", "minstrel")
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "plate").iterdir())
    assert names == ["A01_1.jpg", "A02_1.jpg", "A03_1.jpg", "truth.csv"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "0"], "--n must be at least 1"),
        (["--n", "-3"], "--n must be at least 1"),
        (["--classes", "clear,sparkles"], "unknown class sparkles"),
        (["--style", "rock-maker"], "unknown style rock-maker"),
        (["--size", "8"], "--size must be between"),
        (["--n", "many"], "--n"),
        (["--plate", "--n", "400"], "1 to 312"),
    ],
)
def test_synth_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    r = run("synth", tmp_path / "out", *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0]
    assert not (tmp_path / "out" / "labels.csv").exists()


def test_synth_refuses_file_and_nonempty_folder(tmp_path: Path) -> None:
    afile = tmp_path / "file.txt"
    afile.write_text("hello")
    r = run("synth", afile, "--n", "2")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "is a file" in r.stderr
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    r = run("synth", busy, "--n", "2", "--size", "96")
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "--force" in r.stderr
    r = run("synth", busy, "--n", "2", "--size", "96", "--force", "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert (busy / "notes.txt").read_text() == "mine"


def test_check_missing_folder_is_one_line(tmp_path: Path) -> None:
    r = run("data", "check", tmp_path / "nowhere")
    assert r.returncode != 0
    assert len(r.stderr.strip().splitlines()) == 1 and "does not exist" in r.stderr

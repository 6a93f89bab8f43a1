"""`edgecrystal bench-daemon` and `edgecrystal soak` as a user runs them: real daemons on real
files, tiny counts. Seconds each (daemon start-up), so in the slow tier."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _edgecrystal(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=300, check=False)


@pytest.mark.slow
def test_bench_daemon_scores_the_trickle_and_the_burst(fast_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    done = _edgecrystal("bench-daemon", "--bundle", str(fast_bundle), "--burst", "6",
                        "--trickle", "2", "--interval", "0", "--size", "96x64", "--threads", "1",
                        "--out", str(out), "--workdir", str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["burst"]["ok"] == 6 and report["burst"]["errors"] == 0
    assert report["latency_ms"]["n"] == 2 and report["sigterm"]["exit_code"] == 0
    assert report["command"].startswith("edgecrystal bench-daemon")
    table = out.with_suffix(".md").read_text()
    assert "| burst of 6 |" in table and done.stdout == table + "\n"


@pytest.mark.slow
def test_soak_samples_the_daemon_and_scores_everything(fast_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak"
    done = _edgecrystal("soak", "--bundle", str(fast_bundle), "--minutes", "0.1",
                        "--trickle-s", "0.5", "--burst", "4", "--burst-every-s", "4",
                        "--sample-s", "2", "--warmup-s", "0", "--size", "96x64",
                        "--precision", "fp32", "--threads", "1", "--drain-s", "30",
                        "--out", str(out), "--workdir", str(tmp_path / "work"))
    assert done.returncode == 0, done.stderr
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["unscored_at_end"] == 0 and report["images"] >= 8
    assert sum(int(row["results"]) for row in report["samples"]) == report["images"]
    assert "rss_mib" in report["summary"] and "rss_MiB" in done.stdout


def test_bad_size_is_one_line(fast_bundle: Path) -> None:
    done = _edgecrystal("bench-daemon", "--bundle", str(fast_bundle), "--size", "big")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "edgecrystal: error: --size must be WIDTHxHEIGHT, e.g. 640x480 (got 'big')"]

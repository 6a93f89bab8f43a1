"""`edgecrystal score --ray`: an archive re-score on a real local Ray instance started here.

The slow tests start Ray once per module (start_local_ray(num_cpus=2): on 127.0.0.1 only, a few
seconds) and drive the command as a user does, in subprocesses that join that instance by its
address. The fast test
runs without Ray: `score` must work as before and `--ray` must say which extra is missing."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx_fixtures import write_wells

from edgecrystal.imageio import write_image
from edgecrystal.results import STALE_TEMPORARY_S

# What differs between two scorings of the same image by the same models.
VARYING = ("timings_ms", "created")
# Python with `import ray` failing as it does where the extra is not installed.
WITHOUT_RAY = "import sys; sys.modules['ray'] = None; from edgecrystal.cli import main; main()"


def _score(*args: str, python_code: str | None = None) -> subprocess.CompletedProcess[str]:
    start = [sys.executable, "-c", python_code] if python_code else [
        sys.executable, "-m", "edgecrystal"]
    return subprocess.run([*start, "score", *args], capture_output=True, text=True, timeout=300)


def _records(folder: Path) -> dict[str, dict[str, object]]:
    """Result records by image name, without what changes from run to run."""
    records = {}
    for path in sorted(folder.glob("*.edgecrystal.json")):
        record = json.loads(path.read_text())
        for key in VARYING:
            record.pop(key)
        record["image"].pop("mtime")
        record["image"].pop("mtime_ns")
        record["image"].pop("ctime_ns")
        records[record["image"]["name"]] = record
    return records


def _indexed(database: Path) -> tuple[int, int]:
    """(rows, distinct image paths) in the results index."""
    with sqlite3.connect(database) as connection:
        rows, distinct = connection.execute(
            "select count(*), count(distinct path) from images").fetchone()
    return int(rows), int(distinct)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A local Ray instance with 2 CPUs for this module; its address for `--ray`."""
    ray = pytest.importorskip("ray")
    from edgecrystal.scale.loopback import start_local_ray

    start_local_ray(num_cpus=2, include_dashboard=False, log_to_driver=False)  # on loopback
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_scores_as_score_does_and_rerun_scores_nothing(
        fast_bundle: Path, ray_address: str, tmp_path: Path) -> None:
    for folder in ("plain", "ray"):
        write_wells(tmp_path / folder, 19)
        # A plate with no drop (the fixture finder marks light drops): the report's "no drop"
        # line, which Ray runs lost while they merged their own reports.
        write_image(tmp_path / folder / "B01_1.jpg", np.full((90, 120, 3), 70, np.uint8))
    common = ("--backend", "onnxruntime", "--batch", "2")
    plain = _score(str(fast_bundle), str(tmp_path / "plain"), *common)
    assert plain.returncode == 0, plain.stderr
    database = tmp_path / "index.sqlite"
    spread = _score(str(fast_bundle), str(tmp_path / "ray"), *common,
                    "--index", f"sqlite:///{database}", "--ray", ray_address)
    assert spread.returncode == 0, spread.stderr
    assert "Ray: 2 worker(s)" in spread.stderr
    assert spread.stdout.splitlines()[:-1] == plain.stdout.splitlines()[:-1]  # the report
    assert "no drop" in spread.stdout
    assert "20 scored in" in spread.stdout
    assert _records(tmp_path / "ray") == _records(tmp_path / "plain")
    assert len(_records(tmp_path / "ray")) == 20
    assert (tmp_path / "ray" / "edgecrystal-summary.csv").read_text().count("\n") == 21
    assert _indexed(database) == (20, 20)

    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.json")}
    again = _score(str(fast_bundle), str(tmp_path / "ray"), *common,
                   "--index", f"sqlite:///{database}", "--ray", ray_address)
    assert again.returncode == 0, again.stderr
    assert "0 scored in" in again.stdout
    assert "skipped             20" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ray").glob("*.json")} == written
    assert _indexed(database) == (20, 20)


@pytest.mark.slow
def test_ray_run_killed_midway_is_finished_by_a_rerun(
        fast_bundle: Path, ray_address: str, tmp_path: Path) -> None:
    plate = tmp_path / "plate"
    images = write_wells(plate, 40)
    database = tmp_path / "index.sqlite"
    command = [sys.executable, "-m", "edgecrystal", "score", str(fast_bundle), str(plate),
               "--backend", "onnxruntime", "--batch", "1", "--index",
               f"sqlite:///{database}", "--ray", ray_address]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(plate.glob("*.edgecrystal.json")) and time.monotonic() < deadline:
        assert driver.poll() is None, "the run ended before it could be killed"
        time.sleep(0.005)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    # The driver's actors die with it; what they had in hand may still be written meanwhile.
    time.sleep(3)
    # An actor killed between creating its temporary result and renaming it leaves the
    # temporary behind: the rerun clears such debris once it is older than any live write
    # could be (results.STALE_TEMPORARY_S). Age it rather than wait that long.
    aged = time.time() - STALE_TEMPORARY_S - 1
    for debris in plate.glob(".*.tmp"):
        os.utime(debris, (aged, aged))
    done_before = len(list(plate.glob("*.edgecrystal.json")))
    assert 0 < done_before < len(images)

    rerun = _score(str(fast_bundle), str(plate), "--backend", "onnxruntime", "--batch", "1",
                   "--index", f"sqlite:///{database}", "--ray", ray_address)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(images) - done_before} scored in" in rerun.stdout
    assert f"{'skipped':<14}{done_before:>8}" in rerun.stdout
    names = sorted(p.name for p in plate.iterdir())
    assert names == sorted([p.name for p in images]
                           + [f"{p.name}.edgecrystal.json" for p in images]
                           + ["edgecrystal-summary.csv"])  # no temporary or duplicate files
    assert all(json.loads(Path(f"{p}.edgecrystal.json").read_text())["status"] == "ok"
               for p in images)
    assert _indexed(database) == (len(images), len(images))


@pytest.mark.slow
def test_bare_ray_starts_or_joins_one_on_this_machine(fast_bundle: Path, ray_address: str,
                                                      tmp_path: Path) -> None:
    write_wells(tmp_path / "p", 3)
    res = _score(str(fast_bundle), str(tmp_path / "p"), "--backend", "onnxruntime", "--ray")
    assert res.returncode == 0, res.stderr
    assert "3 scored in" in res.stdout and "Ray: " in res.stderr


@pytest.mark.slow
def test_ray_refuses_an_address_nothing_answers_on(fast_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    write_wells(tmp_path / "p", 1)
    res = _score(str(fast_bundle), str(tmp_path / "p"), "--ray", "127.0.0.1:9")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("edgecrystal: error: no Ray cluster answers at")
    assert len(res.stderr.strip().splitlines()) == 1


def test_a_bare_ray_gets_the_local_address() -> None:
    from edgecrystal.cli.runtime import RAY_LOCAL, ray_address_filled

    assert ray_address_filled(["score", "b", "p", "--ray"]) == ["score", "b", "p", "--ray",
                                                                 RAY_LOCAL]
    assert ray_address_filled(["score", "b", "p", "--ray", "-r"]) == [
        "score", "b", "p", "--ray", RAY_LOCAL, "-r"]
    assert ray_address_filled(["score", "b", "p", "--ray", "auto"]) == [
        "score", "b", "p", "--ray", "auto"]
    assert ray_address_filled(["score", "b", "p"]) == ["score", "b", "p"]


def test_without_ray_score_works_and_ray_names_the_extra(fast_bundle: Path,
                                                         tmp_path: Path) -> None:
    write_wells(tmp_path / "p", 2)
    plain = _score(str(fast_bundle), str(tmp_path / "p"), "--backend", "onnxruntime",
                   python_code=WITHOUT_RAY)
    assert plain.returncode == 0, plain.stderr
    assert "2 scored in" in plain.stdout
    spread = _score(str(fast_bundle), str(tmp_path / "p"), "--force", "--ray",
                    python_code=WITHOUT_RAY)
    assert spread.returncode == 2
    assert spread.stderr.strip() == ("edgecrystal: error: this command needs the ray extra: "
                                     "pip install 'edgecrystal[ray]' (ray is not installed)")


def test_nothing_but_score_ray_loads_ray() -> None:
    """`score` and the daemon stay lean: importing them loads no Ray, installed or not."""
    code = ("import sys\n"
            "import edgecrystal.cli, edgecrystal.scoring, edgecrystal.daemon.service\n"
            "import edgecrystal.pipeline, edgecrystal.scale\n"
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

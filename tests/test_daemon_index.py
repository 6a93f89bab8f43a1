"""Every image `score` and `serve` score goes into the index, and an index that is away never
costs a result: real commands in subprocesses, a real bundle (the TensorFlow-free fast_bundle),
SQLite files and the real PostgreSQL server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from index_helpers import PostgresServer, write_image

from edgecrystal.index.store import Index

RESULT = ".edgecrystal.json"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=300, check=False, env=env)


def inspection(folder: Path, count: int) -> list[Path]:
    return [write_image(folder / f"A{n:02d}_1.jpg", seed=n) for n in range(1, count + 1)]


def labels_in_files(images: list[Path]) -> dict[str, str | None]:
    out = {}
    for image in images:
        record = json.loads(Path(f"{image}{RESULT}").read_text())
        out[os.path.realpath(image)] = record.get("label") or record["status"]
    return out


def labels_in_index(url: str, plate: str) -> dict[str, str | None]:
    with Index.open(url) as index:
        return {r["path"]: r["label"] or r["status"] for r in index.history(plate)}


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_score_puts_every_image_into_the_index(fast_bundle: Path, tmp_path: Path) -> None:
    plate = tmp_path / "imager" / "scoreplate" / "2026-11-20"
    images = inspection(plate, 5)
    broken = plate / "B01_1.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    url = f"sqlite:///{tmp_path}/results.db"
    done = run("score", str(fast_bundle), str(tmp_path / "imager"), "-r", "--index", url)
    assert done.returncode == 1, done.stderr  # the broken image is an error result
    expected = labels_in_files([*images, broken])
    assert expected[os.path.realpath(broken)] == "error"
    assert labels_in_index(url, "scoreplate") == expected
    # Again (all skipped: an error result is work done too) and forced: the same rows.
    assert run("score", str(fast_bundle), str(plate), "--index", url).returncode == 0
    assert run("score", str(fast_bundle), str(plate), "--force", "--index", url).returncode == 1
    assert labels_in_index(url, "scoreplate") == expected


def test_serve_feeds_its_default_index(fast_bundle: Path, tmp_path: Path) -> None:
    images = inspection(tmp_path / "imager" / "serveplate", 4)
    config = tmp_path / "serve.toml"
    config.write_text(f'bundle = "{fast_bundle}"\nwatch = ["{tmp_path / "imager"}"]\n'
                      "settle_ms = 100\n")
    state = tmp_path / "state"
    done = run("serve", "--config", str(config), "--once",
               env={**os.environ, "XDG_STATE_HOME": str(state)})
    assert done.returncode == 0, done.stderr
    default = state / "edgecrystal" / "results.db"
    assert f"index sqlite:///{default}" in done.stderr
    assert labels_in_index(f"sqlite:///{default}", "serveplate") == labels_in_files(images)


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_serve_loses_nothing_while_its_database_is_down(fast_bundle: Path, tmp_path: Path,
                                                        postgres: PostgresServer) -> None:
    root = tmp_path / "imager"
    images = inspection(root / "outageplate", 6)
    config = tmp_path / "serve.toml"
    config.write_text(f'bundle = "{fast_bundle}"\nwatch = ["{root}"]\nsettle_ms = 100\n'
                      f'index = "{postgres.url}"\n')
    postgres.stop("immediate")
    try:
        done = run("serve", "--config", str(config), "--once")
    finally:
        postgres.start()
    assert done.returncode == 0, done.stderr
    assert all(Path(f"{image}{RESULT}").is_file() for image in images)
    assert "unavailable, results are kept" in done.stderr
    assert "is behind by 6 result(s)" in done.stderr
    synced = run("index", "sync", str(root), "--index", postgres.url)
    assert synced.returncode == 0, synced.stderr
    assert labels_in_index(postgres.url, "outageplate") == labels_in_files(images)

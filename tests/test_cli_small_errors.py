"""Small CLI errors a new user meets (issue 23, item 18): arguments swapped, a path of the wrong
kind called missing, the TensorRT notice printed twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from onnx_fixtures import write_wells


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecrystal", *args], capture_output=True,
                          text=True, timeout=300, check=False)


def test_score_notices_the_bundle_and_images_swapped(fast_bundle: Path, tmp_path: Path) -> None:
    plate = tmp_path / "plate"
    write_wells(plate, 1)
    done = cli("score", str(plate), str(fast_bundle))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"edgecrystal: error: {fast_bundle} is a model bundle, not images: the bundle comes "
        f"first (edgecrystal score BUNDLE IMAGES...)"]
    assert not list(plate.glob("*.edgecrystal.json"))


def test_serve_watch_of_a_file_says_it_is_a_file(fast_bundle: Path, tmp_path: Path) -> None:
    image = write_wells(tmp_path / "plate", 1)[0]
    done = cli("serve", "--watch", str(image), "--bundle", str(fast_bundle))
    assert done.returncode == 2
    assert f"watch folder {image} is a file, not a folder" in done.stderr
    assert "does not exist" not in done.stderr


def test_the_tensorrt_notice_is_printed_once(fast_bundle: Path, tmp_path: Path) -> None:
    write_wells(tmp_path / "plate", 1)
    done = cli("score", str(fast_bundle), str(tmp_path / "plate"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("TensorRT not used") == 1, done.stderr

"""Issue 15 items 7-9 on a real `edgecrystal serve` subprocess (TensorFlow-free bundle): a
SIGHUP to another precision rescores and says so, a second daemon on the same folder is
refused, and a writer that pauses with the file open gets no false error."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_daemon import ServeProcess as Daemon
from test_daemon import jpeg_bytes, load, wait_results, write_config
from tiny_onnx_bundle import build_tiny_bundle, write_class_folders


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgecrystal.converters.build import Options, build_engines

    root = tmp_path_factory.mktemp("daemon-built")
    bundle = build_tiny_bundle(root / "bundle")
    build_engines(bundle, Options(calib=write_class_folders(root / "data", 4), calib_count=16))
    return bundle


@pytest.fixture()
def plate(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


def test_sighup_to_another_precision_rescores_and_names_it(built: Path, tmp_path: Path,
                                                           plate: Path) -> None:
    image = plate / "A01_1.jpg"
    image.write_bytes(jpeg_bytes(1))
    cfg = write_config(tmp_path / "serve.toml", built, plate, precision="int8")
    d = Daemon(tmp_path, cfg)
    try:
        wait_results([image], 30, d)
        assert load(image)["model"]["precision"] == "int8"
        write_config(cfg, built, plate, precision="fp32")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_for_log("reloaded", 30)
        assert "precision=fp32" in next(ln for ln in d.text().splitlines() if "reloaded" in ln)
        d.wait_until(lambda: load(image)["model"]["precision"] == "fp32", 30)
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()


def test_a_second_daemon_on_the_same_folder_is_refused(built: Path, tmp_path: Path,
                                                       plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", built, plate)
    first = Daemon(tmp_path, cfg)
    try:
        second = subprocess.run([sys.executable, "-m", "edgecrystal", "serve", "--config",
                                 str(cfg)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        last = second.stderr.strip().splitlines()[-1]
        assert last.startswith("edgecrystal: error: another edgecrystal serve")
        assert f"(pid {first.proc.pid})" in last and str(plate) in last
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None
        assert first.stop() == 0
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    # The lock goes with its holder: the next daemon starts.
    again = Daemon(tmp_path, cfg, name="again")
    assert again.stop() == 0


@pytest.mark.slow  # TF-free but seconds long: the slow tier keeps the fast one under 2 min
def test_a_writer_pausing_with_the_file_open_gets_no_false_error(built: Path, tmp_path: Path,
                                                                 plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", built, plate, settle_ms=1000)
    d = Daemon(tmp_path, cfg)
    image = plate / "B02_1.jpg"
    data = jpeg_bytes(5)
    try:
        with open(image, "wb") as fh:
            fh.write(data[: len(data) // 2])
            fh.flush()
            time.sleep(3.5)  # well past settle_ms, still open: not finished
            assert not Path(f"{image}.edgecrystal.json").exists(), d.text()
            fh.write(data[len(data) // 2 :])
        wait_results([image], 30, d)
        assert load(image)["status"] == "ok"
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    log = d.text()
    assert "status=error" not in log
    assert "stopped scored=1 errors=0" in log


def test_a_truncated_image_that_later_completes_is_not_counted_as_an_error(
        built: Path, tmp_path: Path, plate: Path) -> None:
    cfg = write_config(tmp_path / "serve.toml", built, plate, settle_ms=300)
    d = Daemon(tmp_path, cfg)
    image = plate / "C03_1.jpg"
    data = jpeg_bytes(6)
    try:
        image.write_bytes(data[: len(data) // 2])  # closed: really looks finished
        d.wait_until(lambda: "status=error" in d.text(), 30)
        with open(image, "ab") as fh:  # the copy resumes later
            fh.write(data[len(data) // 2 :])
        d.wait_until(lambda: load(image)["status"] == "ok", 30)
        assert d.stop() == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    assert "stopped scored=1 errors=0" in d.text()
    shutil.rmtree(plate)

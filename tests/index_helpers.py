"""Helpers for the index, review-page and PostgreSQL tests: real image files with real result
files beside them, and a real PostgreSQL server in a temporary folder.

`write_result_for` writes the result file through the project's own results.write_result; the
label and scores come from the test instead of a model, because these tests are about what
happens to results (index, history, review page), not about how a model scores.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgecrystal import DEFAULT_CLASSES
from edgecrystal.crystal_boxes import CrystalBox
from edgecrystal.pipeline import ModelInfo, Scored
from edgecrystal.results import write_result

MODEL = ModelInfo(bundle="/bundles/test", fingerprint="0123456789abcdef",
                  classes=DEFAULT_CLASSES, backend="onnxruntime", precision="fp32")


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (96, 72)) -> Path:
    """A small real JPEG (noise and a dark disc for a drop)."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(150, 230, (height, width, 3), dtype=np.uint8)
    cv2.circle(pixels, (width // 2, height // 2), min(width, height) // 3, (90, 110, 120), -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".jpg", pixels)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def write_result_for(image: Path, label: str | None, *, crystals: float = 0.0,
                     error: str | None = None, crystals_hit: bool | None = None,
                     uncertain: bool | None = None,
                     boxes: list[CrystalBox] | None = None) -> Path:
    """The result file beside `image`: `label` with `crystals` as the crystals score (the rest
    shared by the other classes), or an error result of kind `error`. `crystals_hit` defaults
    to a crystals label, `uncertain` to what the scores say (confidence.uncertain); `boxes`
    what a crystal model found (None: the bundle has none)."""
    from edgecrystal.confidence import uncertain as is_uncertain

    data = image.read_bytes()
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    height, width = decoded.shape[:2]
    scored = Scored(path=image, stat=os.stat(image), sha256=hashlib.sha256(data).hexdigest(),
                    width=width, height=height, size_bytes=len(data))
    if error:
        scored.status, scored.error_kind, scored.error_reason = "error", error, "test: " + error
    else:
        scored.scores = {c: 0.0 for c in DEFAULT_CLASSES}
        scored.scores["crystals"] = crystals
        rest = 1.0 - crystals
        if label == "crystals" or label is None:
            for name in (c for c in DEFAULT_CLASSES if c != "crystals"):
                scored.scores[name] = rest / 3
        else:
            scored.scores[label] = rest * 0.85
            for name in (c for c in DEFAULT_CLASSES if c not in (label, "crystals")):
                scored.scores[name] = rest * 0.075
        scored.label = max(scored.scores, key=scored.scores.__getitem__)
        scored.crystals_hit = scored.label == "crystals" if crystals_hit is None else crystals_hit
        scored.uncertain = (is_uncertain(list(scored.scores.values())) if uncertain is None
                            else uncertain)
        scored.found, scored.box = True, (width // 6, height // 6, width - width // 6,
                                          height - height // 6)
        scored.area_px = (scored.box[2] - scored.box[0]) * (scored.box[3] - scored.box[1])
        scored.crystals = boxes
    return write_result(scored, MODEL)


def plate_over_time(root: Path, plate: str, days: list[str],
                    labels: dict[str, list[str]]) -> list[Path]:
    """`root/plate/<day>/<well>_1.jpg` with results: labels[well][i] at days[i]."""
    results = []
    for index, day in enumerate(days):
        for well, per_day in labels.items():
            label = per_day[index]
            image = write_image(root / plate / day / f"{well}_1.jpg", seed=index)
            results.append(write_result_for(image, label,
                                            crystals=0.9 if label == "crystals" else 0.05))
    return results


# ---------------------------------------------------------------------- PostgreSQL
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """Debian's PostgreSQL in a temporary folder, on a loopback port, as a non-root user
    (initdb refuses root: under root it runs as the `postgres` user the package creates)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="edgecrystal-pg-"))
        self.data = self.folder / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.url = f"postgresql://edgecrystal@127.0.0.1:{self.port}/edgecrystal"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check,
                              timeout=120, cwd=self.folder)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "edgecrystal", "-A", "trust",
                  "--no-sync", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "edgecrystal",
                  "edgecrystal")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -F"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l",
                  str(self.folder / "server.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def cleanup(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (scripts/setup.sh installs Debian's "
                    "postgresql)")
    server = PostgresServer(bin_dir)
    try:
        server.init()
        yield server
    finally:
        server.cleanup()


def wait_until(condition: object, timeout: float = 30.0, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False

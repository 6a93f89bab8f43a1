"""Atomic file writes: a reader sees the old file or the whole new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write to a temporary file in the same folder, fsync, rename over `path`, fsync the folder.

    `mode`: permissions for the new file (less the umask); by default mkstemp's 0600 stays."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(fd, mode & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n")


def temporary_target(name: str) -> str | None:
    """The file name a write_bytes temporary (`.NAME.XXXXXXXX.tmp`) was being written for;
    None for any other name."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None
    target, dot, _random = name[1:-len(".tmp")].rpartition(".")
    return target if dot and target else None


def is_temporary(name: str) -> bool:
    """Our own in-flight temporary files (and the usual editor/uploader ones)."""
    return (name.startswith(".") and name.endswith(".tmp")) or name.endswith(
        (".part", ".crdownload", "~")
    )


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (network shares) refuse fsync on a directory
    finally:
        os.close(fd)

"""Serving an indexed picture without a window between checking it and reading it.

A check of the real path followed by a second open (what a path-taking response does) can be
raced: a link swapped in between the two is followed. Here the file is opened once, one path
component at a time below "/", none of them allowed to be a link (O_NOFOLLOW), the opened
descriptor is checked to be a regular file, and that descriptor is what the response reads.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Iterator
from typing import BinaryIO

from starlette.responses import StreamingResponse

CHUNK = 256 * 1024
_DIRECTORY = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in must not hang the open; it is then refused as not a file.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_without_links(path: str) -> BinaryIO | None:
    """The regular file at the absolute `path`, opened with no symbolic link followed anywhere
    along it; None when it is missing, not a regular file, or any component is a link."""
    parts = [part for part in path.split("/") if part]
    if not os.path.isabs(path) or not parts or ".." in parts or "." in parts:
        return None
    try:
        folder = os.open("/", _DIRECTORY)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            below = os.open(part, _DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = below
        fd = os.open(parts[-1], _FILE, dir_fd=folder)
    except OSError:  # ELOOP for a link, ENOTDIR, ENOENT, EACCES...
        return None
    finally:
        os.close(folder)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class OpenedFileResponse(StreamingResponse):
    """The bytes of an already opened file, closed when sent (or when the client went away)."""

    def __init__(self, opened: BinaryIO, name: str, headers: dict[str, str]) -> None:
        size = os.fstat(opened.fileno()).st_size
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        super().__init__(_chunks(opened, size), media_type=media_type,
                         headers={**headers, "Content-Length": str(size)})


def _chunks(opened: BinaryIO, size: int) -> Iterator[bytes]:
    """At most the `size` announced in Content-Length (a file cut shorter meanwhile ends the
    response early, which the client sees as a short read)."""
    with opened:
        left = size
        while left > 0 and (chunk := opened.read(min(CHUNK, left))):
            left -= len(chunk)
            yield chunk

"""Finding input images: the one rule for what counts as an input, and the one folder walk.

`score` (files and folders on the command line), `bench --images` and the daemon (its rescans
and its inotify events) all ask this module, so a file the daemon would score is exactly a file
`score` would score in the same folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .imageio import IMAGE_SUFFIXES
from .results import is_own_output

log = logging.getLogger(__name__)


def is_input_name(name: str, extensions: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    """An image name (by suffix, any case) that is neither a dot file (an uploader's in-flight
    copy, or one of our temporaries) nor something edgecrystal wrote (results, overlays,
    summaries)."""
    return (name.lower().endswith(tuple(e.lower() for e in extensions))
            and not name.startswith(".") and not is_own_output(name))


def within(path: Path, roots: Iterable[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def link_out_of(path: Path, roots: Iterable[Path]) -> str | None:
    """Why `path`, a symbolic link, may not be followed: it leads out of the roots (real paths
    compared) or nowhere. None for a link that stays inside, and for anything not a link. The
    one rule for `score` (folders it walks) and the daemon (its watched folders)."""
    if not path.is_symlink():
        return None
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # RuntimeError: a loop of links
        return "dangling symlink"
    if not within(real, [Path(os.path.realpath(r)) for r in roots]):
        return f"symlink out of the folder (to {real})"
    return None


def scan(roots: Iterable[Path], recursive: bool,
         wanted: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """Every wanted path under the roots (default: input image names). Dot folders are skipped;
    symlinked folders are not entered (they could lead out of the roots or round in a loop);
    what a path points at is the caller's to check."""
    accept = wanted or (lambda path: is_input_name(path.name))
    for root in roots:
        if recursive:
            for folder, dirs, names in os.walk(root, followlinks=False):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    path = Path(folder) / name
                    if accept(path):
                        yield path
        else:
            try:
                entries = sorted(os.scandir(root), key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                path = Path(entry.path)
                if accept(path):
                    yield path


def collect_images(paths: Iterable[Path], recursive: bool) -> list[Path]:
    """Named files as given (whatever their suffix: a named file is meant to be scored), then
    the input images inside named folders, none by a link out of its folder; each path once,
    in order."""
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates = [p for p in scan([path], recursive)
                          if p.is_file() and not _skipped_link(p, path)]
        else:
            candidates = [path]
        for candidate in candidates:
            if candidate not in seen:
                seen.add(candidate)
                found.append(candidate)
    return found


def _skipped_link(path: Path, root: Path) -> bool:
    why = link_out_of(path, [root])
    if why is not None:
        log.warning("skipped %s: %s", path, why)
    return why is not None

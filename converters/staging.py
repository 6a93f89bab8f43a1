"""Building a bundle in a staging copy, swapped in only when the whole build succeeded.

`build-engines` rewrites several files (the FP32 export, FP16, INT8, calibration records,
bundle.json); a failure half-way (no calibration images, a conversion that does not check out)
used to leave a bundle whose FP32 was new and whose INT8 was stale: unusable at INT8. Here the
build runs in a copy beside the bundle (same file system, so the swap is a rename), and the
copy replaces the bundle in one atomic exchange (renameat2 RENAME_EXCHANGE; two renames where
the file system cannot exchange). A failure removes the copy and leaves the bundle untouched.

Files the build only reads (Keras models, imported sources, training checkpoints) are
hard-linked into the copy rather than copied: a bundle's largest files cost no time or space.
Everything the build may write is a real copy, so writing in place never reaches the original.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from edgecrystal.errors import EdgeCrystalError

# Read, never written, by build-engines: safe to share between the bundle and its copy.
READ_ONLY_SUFFIXES = (".keras", ".h5")
READ_ONLY_FOLDERS = ("imported", "checkpoints")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@contextlib.contextmanager
def staged(root: Path, log: Callable[[str], None]) -> Iterator[Path]:
    """A copy of the bundle at `root` to build in; on leaving without an error it becomes the
    bundle (the real folder, when `root` is a link to it), on an error it is removed. Where no
    folder can be made beside the bundle, the build runs in place, with one line saying so."""
    real = root.resolve()
    try:
        work = Path(tempfile.mkdtemp(prefix=f".{real.name}.building-", dir=real.parent))
    except OSError as exc:
        log(f"cannot make a staging folder beside {real} ({exc.strerror or exc}): building in "
            "place, so a failed build may leave the bundle half-rebuilt")
        yield real
        return
    try:
        shutil.copytree(real, work, symlinks=True, dirs_exist_ok=True,
                        copy_function=_copier(real))
        yield work
    except BaseException as exc:
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(exc, EdgeCrystalError):  # name the bundle, not its staging copy
            exc.args = tuple(a.replace(str(work), str(real)) if isinstance(a, str) else a
                             for a in exc.args)
        raise
    _swap_in(work, real)


def _copier(real: Path) -> Callable[[str, str], object]:
    def copy(src: str, dst: str) -> object:
        rel = Path(src).relative_to(real)
        if rel.suffix in READ_ONLY_SUFFIXES or rel.parts[0] in READ_ONLY_FOLDERS:
            with contextlib.suppress(OSError):
                os.link(src, dst)
                return dst
        return shutil.copy2(src, dst)
    return copy


def _swap_in(work: Path, real: Path) -> None:
    """`work` becomes `real`; the old bundle is removed."""
    if _exchange(work, real):
        shutil.rmtree(work, ignore_errors=True)  # holds the old bundle now
        return
    old = Path(tempfile.mkdtemp(prefix=f".{real.name}.old-", dir=real.parent))
    os.rename(real, old / "bundle")
    try:
        os.rename(work, real)
    except OSError:
        os.rename(old / "bundle", real)
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where that is not available."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False  # a file system (or kernel) that cannot exchange: two renames then
    raise OSError(code, os.strerror(code), str(b))

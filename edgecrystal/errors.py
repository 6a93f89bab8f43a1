"""Errors a user can meet. Each carries a one-line message that says what was wrong.

`one_line(exc)` is the one way to turn some library's exception (ONNX Runtime, Keras, TensorRT,
the OS) into text for such a message or a result file: first non-empty line, whitespace
collapsed, capped in length.
"""

from __future__ import annotations

import os

# Long enough for a path and a reason; short enough for a log line or a result file.
ONE_LINE_LIMIT = 300


def one_line(exc: BaseException, limit: int = ONE_LINE_LIMIT) -> str:
    """The first non-empty line of `exc`'s message with whitespace collapsed, at most `limit`
    characters (the exception's type name when the message is empty)."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines()]
    text = next((line for line in lines if line), "") or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def path_problem(path: str | os.PathLike[str], want: str) -> str | None:
    """Why `path` is not the `want` ("file" or "folder") a command needs, or None: "does not
    exist" only when nothing is there, so a path of the wrong kind is not called missing."""
    text = os.fspath(path)
    if not os.path.exists(text):
        return "does not exist"
    is_folder = os.path.isdir(text)
    if want == "folder" and not is_folder:
        return "is a file, not a folder"
    if want == "file" and is_folder:
        return "is a folder, not a file"
    return None


class EdgeCrystalError(Exception):
    """An expected failure: the CLI prints its message on one line and exits non-zero."""

    exit_code = 2


class UsageError(EdgeCrystalError):
    """Bad command-line input: a missing folder, a count out of range, a path of the wrong kind."""


class DataError(EdgeCrystalError):
    """A data set that cannot be used as it is."""


class BundleError(EdgeCrystalError):
    """A model bundle that is missing, incomplete or does not match this code."""


class BackendError(EdgeCrystalError):
    """An inference backend that cannot run here (no GPU, no TensorRT, another GPU's engine)."""


class ImageError(EdgeCrystalError):
    """An image file that cannot be turned into pixels. `kind` names the reason for result files."""

    kind = "unreadable"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ImageMissing(ImageError):
    kind = "missing"


class ImageEmpty(ImageError):
    kind = "empty"


class NotAnImage(ImageError):
    kind = "not_an_image"


class ImageTruncated(ImageError):
    kind = "truncated"


class ImageTooLarge(ImageError):
    kind = "too_large"


class ImageUnsupported(ImageError):
    kind = "unsupported"


class ImageUnreadable(ImageError):
    kind = "unreadable"

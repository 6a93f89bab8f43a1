"""Errors a user can meet. Each carries a one-line message that says what was wrong."""

from __future__ import annotations


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

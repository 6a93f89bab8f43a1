"""The daemon's log: one line per event on stderr, to journald when under systemd."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def setup_logging(level: str) -> None:
    """One line per event on stderr. Under systemd (JOURNAL_STREAM set) lines carry sd-daemon
    priority prefixes instead of timestamps: journald adds its own and keeps the levels."""
    handler = logging.StreamHandler(sys.stderr)
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(errors="backslashreplace", line_buffering=True)
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("edgecrystal")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


class _JournalFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


def quoted(path: Path) -> str:
    """A path on one log line: quoted when it holds spaces, newlines escaped."""
    s = str(path).replace("\n", "\\n")
    return f'"{s}"' if (" " in s or '"' in s) else s

"""The one call `score` and `serve` make to keep an index: `open_writer(...)`, then
`writer.add(result_file)` after each result file is written, and `writer.close()` at the end.

Imports nothing beyond the standard library until an index is really wanted, so the lean
runtime install (no `index` extra) runs the daemon as before and says so in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import UsageError
from . import INSTALL_HINT, available

if TYPE_CHECKING:
    from .writer import IndexWriter

log = logging.getLogger(__name__)

DEFAULT = "default"  # serve's config value for the embedded SQLite file (store.default_url)
OFF = ("", "off", "none")


def open_writer(setting: str | None, *, name_patterns: Sequence[str] = (),
                rock_maker_columns: int = 12) -> IndexWriter | None:
    """A started IndexWriter for `setting` (a URL, "default", or "off"/""/None: no index).

    "default" without the extra installed: one log line and no index. A URL named explicitly
    without the extra: a UsageError (the user asked for something this install cannot do)."""
    if setting is None or setting.strip().lower() in OFF:
        return None
    if not available():
        if setting == DEFAULT:
            log.info("index off: the `index` extra is not installed (%s)", INSTALL_HINT)
            return None
        raise UsageError(f"an index was asked for but the `index` extra is not installed: "
                         f"{INSTALL_HINT}")
    from ..naming import NameReader
    from .store import default_url, normalise_url, redact
    from .writer import IndexWriter

    url = normalise_url(default_url() if setting == DEFAULT else setting)
    reader = NameReader(name_patterns, rock_maker_columns)
    log.info("index %s", redact(url))
    return IndexWriter(url, reader)

"""The plate results index: every scored image as a row in a database (SQLite by default,
PostgreSQL for a facility), so that plates, wells, drop histories and hits can be asked for.

Needs the `index` extra (SQLAlchemy, Alembic, psycopg). The result files beside the images stay
the record of work done; the index is built from them and can always be rebuilt
(`edgecrystal index sync ROOT`). See docs/review.md.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'edgecrystal[index]'"


def available() -> bool:
    """Whether the index's libraries are installed (the lean runtime install has none)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("sqlalchemy", "alembic"))

"""Alembic migrations for the index, shipped inside the package and run by the code itself
(edgecrystal.index.store.migrate): no alembic.ini, no command to remember."""

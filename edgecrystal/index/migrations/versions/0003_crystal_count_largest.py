"""crystal_count and largest_crystal_px columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for rows scored without a crystal model and for rows indexed before these existed
    # (`index sync` refills them from the files).
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("crystal_count", sa.Integer))
        batch.add_column(sa.Column("largest_crystal_px", sa.Integer))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("largest_crystal_px")
        batch.drop_column("crystal_count")

"""crystals_hit and uncertain columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows indexed before these existed keep NULL: `index sync` refills them from the files.
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("crystals_hit", sa.Boolean))
        batch.add_column(sa.Column("uncertain", sa.Boolean))
    op.create_index("ix_images_uncertain", "images", ["uncertain"])


def downgrade() -> None:
    op.drop_index("ix_images_uncertain", "images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("uncertain")
        batch.drop_column("crystals_hit")

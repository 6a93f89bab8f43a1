"""The index's tables (SQLAlchemy Core). Changing them means a new Alembic revision in
migrations/versions/ that makes the same change: the tables here are what the code reads and
writes, the revisions are how an existing database gets there."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# One row per image file (its real path is the key): re-scoring updates the row.
images = sa.Table(
    "images",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("path", sa.String(4096), nullable=False, unique=True),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    # Where the image sits on the plate, from its name (edgecrystal.naming).
    sa.Column("plate", sa.String(255), nullable=False),
    sa.Column("well", sa.String(8)),
    sa.Column("drop_number", sa.Integer),
    sa.Column("inspection", sa.String(255)),
    sa.Column("inspected_at", sa.DateTime(timezone=True)),
    sa.Column("name_layout", sa.String(64), nullable=False),
    sa.Column("name_understood", sa.Boolean, nullable=False),
    sa.Column("name_note", sa.String(255)),
    # What the model said.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_kind", sa.String(64)),
    sa.Column("error_reason", sa.Text),
    sa.Column("label", sa.String(64)),
    sa.Column("label_score", sa.Float),
    sa.Column("crystals_hit", sa.Boolean),  # the bundle's crystals operating threshold
    sa.Column("uncertain", sa.Boolean),  # low or close calibrated scores (confidence.py)
    sa.Column("drop_found", sa.Boolean),
    sa.Column("box_x0", sa.Integer),
    sa.Column("box_y0", sa.Integer),
    sa.Column("box_x1", sa.Integer),
    sa.Column("box_y1", sa.Integer),
    sa.Column("area_fraction", sa.Float),
    # The crystal model's boxes (crystal_boxes.py); NULL when the bundle had no crystal model.
    sa.Column("crystal_count", sa.Integer),
    sa.Column("largest_crystal_px", sa.Integer),  # longest side of the largest box
    sa.Column("fingerprint", sa.String(128)),
    sa.Column("backend", sa.String(32)),
    sa.Column("precision", sa.String(16)),
    sa.Column("scored_at", sa.DateTime(timezone=True)),
    sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
    # What a person said: kept across re-scoring while the image's bytes stay the same.
    sa.Column("human_label", sa.String(64)),
    sa.Column("human_by", sa.String(128)),
    sa.Column("human_at", sa.DateTime(timezone=True)),
)
sa.Index("ix_images_plate_well", images.c.plate, images.c.well, images.c.drop_number)
sa.Index("ix_images_uncertain", images.c.uncertain)

# Every class score of an image (the class list is the bundle's, so it is rows, not columns).
scores = sa.Table(
    "scores",
    metadata,
    sa.Column("image_id", sa.Integer, sa.ForeignKey("images.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("class_name", sa.String(64), primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
)
sa.Index("ix_scores_class_score", scores.c.class_name, scores.c.score)

"""Materiality: each feature result says whether it was detectable and material.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``drift`` keeps its meaning (what to act on: detectable and material). The new
columns are nullable: a row stored before this revision has no separate
verdicts; readers take ``detectable = drift`` and ``material = true`` for it,
which is what it meant then. Batch mode, so that SQLite gets the same schema.
Migrations are frozen: names are spelled out here, never imported from ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``detectable``, ``material``, ``effect_size_lower`` and ``min_effect_size``."""
    with op.batch_alter_table("feature_results") as batch:
        batch.add_column(sa.Column("detectable", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("material", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("effect_size_lower", sa.Double(), nullable=True))
        batch.add_column(sa.Column("min_effect_size", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop the four columns."""
    with op.batch_alter_table("feature_results") as batch:
        batch.drop_column("min_effect_size")
        batch.drop_column("effect_size_lower")
        batch.drop_column("material")
        batch.drop_column("detectable")

"""Reference versions: the model version a reference describes, and when it takes effect.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

Both columns are nullable: a row stored before this revision describes no
particular model version and is in force from the start (``effective_from``
NULL), which is how the service read it until now. Batch mode, so that SQLite
(which cannot alter a table in place) gets the same schema. Migrations are
frozen: names and values are spelled out here, never imported from ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``model_version`` and ``effective_from`` to ``reference_profiles``."""
    with op.batch_alter_table("reference_profiles") as batch:
        batch.add_column(sa.Column("model_version", sa.String(), nullable=True))
        batch.add_column(sa.Column("effective_from", sa.Double(), nullable=True))


def downgrade() -> None:
    """Drop both columns (every stored reference then applies from the start again)."""
    with op.batch_alter_table("reference_profiles") as batch:
        batch.drop_column("effective_from")
        batch.drop_column("model_version")

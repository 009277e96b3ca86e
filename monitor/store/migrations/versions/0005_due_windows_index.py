"""Due windows: an index on the partials' window end, covering the due-windows query.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

``Store.due_windows`` reads ``(model, window_start, window_end)`` of the
partials whose window ends at or before the highest watermark, every
evaluation round. Without an index that was a scan of the whole partials
table (heap pages holding sketches included), which with the default 7-day
partial retention grows with every window kept. The index leads with
``window_end`` (the range the query filters) and carries ``model`` and
``window_start`` (what it returns and joins the claims on), so PostgreSQL can
answer from the index alone. Batch mode, so that SQLite gets the same schema.
Migrations are frozen: names are spelled out here, never imported from ``models``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``ix_partials_window_end_model_window_start``."""
    with op.batch_alter_table("partials") as batch:
        batch.create_index(
            "ix_partials_window_end_model_window_start", ["window_end", "model", "window_start"]
        )


def downgrade() -> None:
    """Drop the index."""
    with op.batch_alter_table("partials") as batch:
        batch.drop_index("ix_partials_window_end_model_window_start")

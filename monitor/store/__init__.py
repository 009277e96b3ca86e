"""The service's database: SQLAlchemy 2 models, Alembic migrations and the :class:`Store`.

SQLite (one process, the default) and PostgreSQL (several processes in one
consumer group) are supported. ``Store.connect(url)`` opens a database,
migrates it to the newest schema and returns the repository through which
the rest of the service reads and writes.
"""

from monitor.store.engine import configure_sqlite, create_engine
from monitor.store.errors import StoreError, mask_url
from monitor.store.repository import Clock, Store
from monitor.store.rows import (
    FeatureResultRow,
    JoinedPrediction,
    LabelRow,
    PartialRow,
    PredictionRow,
    ProgressRow,
    WindowSummaryRow,
)
from monitor.store.schema import current_revision, head_revision, migrate

__all__ = [
    "Clock",
    "FeatureResultRow",
    "JoinedPrediction",
    "LabelRow",
    "PartialRow",
    "PredictionRow",
    "ProgressRow",
    "Store",
    "StoreError",
    "WindowSummaryRow",
    "configure_sqlite",
    "create_engine",
    "current_revision",
    "head_revision",
    "mask_url",
    "migrate",
]

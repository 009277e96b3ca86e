"""The service's database: SQLAlchemy 2 models, Alembic migrations and the :class:`Store`.

SQLite (one process, the default) and PostgreSQL (several processes in one
consumer group) are supported. ``Store.connect(url)`` opens a database,
migrates it to the newest schema and returns the repository through which
the rest of the service reads and writes.
"""

from monitor.store.alerting import AlertStore, EventDelivery, SqlOutbox, event_row, incident_key
from monitor.store.engine import configure_sqlite, create_engine
from monitor.store.errors import StoreError, mask_url
from monitor.store.repository import Clock, StaleReferenceError, Store
from monitor.store.rows import (
    EventRow,
    FeatureResultRow,
    IncidentRow,
    JoinedPrediction,
    LabelRow,
    OutboxRow,
    PartialRow,
    PredictionRow,
    ProgressRow,
    WindowSummaryRow,
)
from monitor.store.schema import current_revision, head_revision, migrate

__all__ = [
    "AlertStore",
    "Clock",
    "EventDelivery",
    "EventRow",
    "FeatureResultRow",
    "IncidentRow",
    "JoinedPrediction",
    "LabelRow",
    "OutboxRow",
    "PartialRow",
    "PredictionRow",
    "ProgressRow",
    "SqlOutbox",
    "StaleReferenceError",
    "Store",
    "StoreError",
    "WindowSummaryRow",
    "configure_sqlite",
    "create_engine",
    "current_revision",
    "event_row",
    "head_revision",
    "incident_key",
    "mask_url",
    "migrate",
]

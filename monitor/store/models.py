"""The store's tables, as SQLAlchemy 2 declarative models.

Every time is Unix epoch seconds in a double-precision column: window
bounds, event times and the store's own bookkeeping times alike, so that one
comparison works on both SQLite and PostgreSQL without time-zone handling.
Sketches and profiles are opaque bytes here (``detectors`` serialises them).

Changing a model needs a new migration in ``migrations/versions``; a test
compares the models with a migrated database.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Claim status of a window being evaluated, and of one whose results are stored.
CLAIMED, DONE = "claimed", "done"
#: Summary status of an evaluated window, and of one with too few rows to test.
OK, INSUFFICIENT_DATA = "ok", "insufficient_data"

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of the store's models; ``Base.metadata`` is the whole schema."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        str: String(),
        int: Integer(),
        float: Double(),
        bool: Boolean(),
        bytes: LargeBinary(),
    }


class ReferenceProfile(Base):
    """A model's reference profile (usually of its training data); versions count from 1."""

    __tablename__ = "reference_profiles"

    model: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[float]
    profile: Mapped[bytes]

    __table_args__ = (CheckConstraint("version >= 1", name="version_positive"),)


class Partial(Base):
    """The complete partial sketch of one partition's records in one window of a model.

    A partition is owned by one consumer at a time, so a checkpoint replaces
    the row; partials of different partitions are merged when the window is
    evaluated.
    """

    __tablename__ = "partials"

    model: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[float] = mapped_column(primary_key=True)
    window_end: Mapped[float]
    topic: Mapped[str] = mapped_column(primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True)
    sketch: Mapped[bytes]
    rows: Mapped[int]
    updated_at: Mapped[float]

    __table_args__ = (
        CheckConstraint("rows >= 0", name="rows_not_negative"),
        CheckConstraint("window_end > window_start", name="window_not_empty"),
        # Reloading a partition's state when a consumer is assigned it.
        Index(None, "topic", "partition", "window_start"),
    )


class PartitionProgress(Base):
    """How far a consumer group has aggregated a partition: the next offset to read, and when.

    ``max_event_time`` (largest event time seen) and ``last_record_at``
    (when a record last arrived) let every process compute every
    partition's watermark and idleness.
    """

    __tablename__ = "partition_progress"

    group_id: Mapped[str] = mapped_column(primary_key=True)
    topic: Mapped[str] = mapped_column(primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    max_event_time: Mapped[float | None]
    last_record_at: Mapped[float | None]
    updated_at: Mapped[float]

    __table_args__ = (CheckConstraint("next_offset >= 0", name="offset_not_negative"),)


class WindowClaim(Base):
    """The unique row that makes a window's evaluation happen once across processes."""

    __tablename__ = "window_claims"

    model: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[float] = mapped_column(primary_key=True)
    window_end: Mapped[float]
    owner: Mapped[str]
    claimed_at: Mapped[float]
    status: Mapped[str]
    finished_at: Mapped[float | None]

    __table_args__ = (CheckConstraint(f"status IN ('{CLAIMED}', '{DONE}')", name="status_known"),)


class WindowSummary(Base):
    """The result of evaluating one window of a model: dataset drift and the window's size."""

    __tablename__ = "window_summaries"

    model: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[float] = mapped_column(primary_key=True)
    window_end: Mapped[float]
    rows: Mapped[int]
    status: Mapped[str]
    dataset_drift: Mapped[bool]
    drift_share: Mapped[float]
    prediction_drift: Mapped[bool | None]
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    evaluated_at: Mapped[float]

    __table_args__ = (
        CheckConstraint(f"status IN ('{OK}', '{INSUFFICIENT_DATA}')", name="status_known"),
    )


class FeatureResult(Base):
    """One drift test of one feature in one evaluated window."""

    __tablename__ = "feature_results"

    model: Mapped[str] = mapped_column(primary_key=True)
    window_start: Mapped[float] = mapped_column(primary_key=True)
    feature: Mapped[str] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(primary_key=True)
    kind: Mapped[str]
    statistic: Mapped[float | None]
    p_value: Mapped[float | None]
    threshold: Mapped[float]
    drift: Mapped[bool]
    effect_size: Mapped[float | None]
    missing_share: Mapped[float]
    status: Mapped[str]


class Prediction(Base):
    """A prediction kept for joining its label later; deleted by retention on ``event_time``."""

    __tablename__ = "predictions"

    model: Mapped[str] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(primary_key=True)
    event_time: Mapped[float]
    window_start: Mapped[float]
    label: Mapped[str | None]
    score: Mapped[float | None]
    stored_at: Mapped[float]

    __table_args__ = (Index(None, "model", "event_time"),)


class Label(Base):
    """The true label of a prediction, which may arrive before or long after it."""

    __tablename__ = "labels"

    model: Mapped[str] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(primary_key=True)
    label: Mapped[str]
    event_time: Mapped[float]
    received_at: Mapped[float]

    __table_args__ = (Index(None, "model", "event_time"),)

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
    """A model's reference profile (usually of its training data); versions count from 1.

    ``model_version`` is the version of the model the reference describes (None:
    not given). ``effective_from`` is the start of the first window sketched on
    this profile (None: from the start); a window uses the newest version whose
    ``effective_from`` is at or before its start.
    """

    __tablename__ = "reference_profiles"

    model: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[float]
    profile: Mapped[bytes]
    model_version: Mapped[str | None]
    effective_from: Mapped[float | None]

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
        # Store.due_windows every evaluation round: the range on window_end, and the
        # columns it returns, so PostgreSQL answers from the index without the sketches.
        Index(None, "window_end", "model", "window_start"),
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
    # Null on rows stored before migration 0004 (read as detectable = drift, material = true).
    detectable: Mapped[bool | None]
    material: Mapped[bool | None]
    effect_size_lower: Mapped[float | None]
    min_effect_size: Mapped[float | None]


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


# --- alerting ----------------------------------------------------------------------------------

#: Status of an incident still firing, and of one that ended.
FIRING, RESOLVED = "firing", "resolved"
#: States of an outbox row (``alerts.outbox.STATES``).
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


class AlertCursor(Base):
    """How far the alert rules of a model have consumed its windows.

    ``position`` is the ``window_start`` of the last window the rules consumed (None:
    none yet); it moves by compare-and-set only, so two processes never both feed a window.
    """

    __tablename__ = "alert_cursors"

    model: Mapped[str] = mapped_column(primary_key=True)
    position: Mapped[float | None]
    updated_at: Mapped[float]


class AlertRuleState(Base):
    """Where one rule stands for one subject of one model (``RuleState.to_json``)."""

    __tablename__ = "alert_rule_states"

    model: Mapped[str] = mapped_column(primary_key=True)
    rule: Mapped[str] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[float]


class AlertIncident(Base):
    """A firing episode of a rule for a subject of a model, and how it ended.

    ``reason`` says why a resolved incident ended (``"clean_windows"``,
    ``"model_replaced"``, ...); ``resolved_window_end`` is the end of the window that
    resolved it.
    """

    __tablename__ = "alert_incidents"

    id: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str]
    rule: Mapped[str]
    subject: Mapped[str]
    severity: Mapped[str]
    status: Mapped[str]
    started_window_start: Mapped[float]
    last_window_end: Mapped[float]
    resolved_window_end: Mapped[float | None]
    reason: Mapped[str | None]
    retrain_requested: Mapped[bool]
    created_at: Mapped[float]
    updated_at: Mapped[float]

    __table_args__ = (
        CheckConstraint(f"status IN ('{FIRING}', '{RESOLVED}')", name="status_known"),
        # The open incidents of a model (alerts gauge, operator listings).
        Index(None, "model", "status"),
    )


class AlertEventRecord(Base):
    """An alert event as emitted: what identifies it, and its stored JSON (``event_to_json``)."""

    __tablename__ = "alert_events"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    model: Mapped[str]
    rule: Mapped[str]
    subject: Mapped[str]
    incident: Mapped[str]
    type: Mapped[str]
    created_at: Mapped[float]
    payload: Mapped[bytes]

    # The newest events of a model (operator listings).
    __table_args__ = (Index(None, "model", "created_at"),)


class AlertOutbox(Base):
    """The delivery of one alert event to one target: its state, retries and lease."""

    __tablename__ = "alert_outbox"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str]
    attempts: Mapped[int]
    next_attempt_at: Mapped[float]
    created_at: Mapped[float]
    last_error: Mapped[str | None]
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[float | None]

    __table_args__ = (
        CheckConstraint(f"state IN ('{PENDING}', '{DELIVERED}', '{DEAD}')", name="state_known"),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        # Claims: the due pending rows, earliest first.
        Index(None, "state", "next_attempt_at"),
    )


class AlertDeliveryAttempt(Base):
    """The record of one delivery attempt of an event to a target (kept for operators)."""

    __tablename__ = "alert_delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    event_id: Mapped[str]
    target: Mapped[str]
    attempt: Mapped[int]
    started_at: Mapped[float]
    finished_at: Mapped[float]
    outcome: Mapped[str]
    status_code: Mapped[int | None]
    error: Mapped[str | None]

    # The attempts of an event (operator listings).
    __table_args__ = (Index(None, "event_id", "target"),)

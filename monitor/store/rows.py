"""The typed values the store takes and returns: frozen, keyword-only, one per kind of row.

Times are Unix epoch seconds. Fields match the columns of the table of the
same name in :mod:`monitor.store.models`, minus the store's own bookkeeping
times, which it sets from its clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True, kw_only=True, slots=True)
class PartialRow:
    """The partial sketch (opaque bytes) of one partition's ``rows`` records in a model's window."""

    model: str
    window_start: float
    window_end: float
    topic: str
    partition: int
    sketch: bytes
    rows: int


@dataclass(frozen=True, kw_only=True, slots=True)
class ProgressRow:
    """A partition's next offset to consume, its largest event time and last record arrival."""

    topic: str
    partition: int
    next_offset: int
    max_event_time: float | None = None
    last_record_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class WindowSummaryRow:
    """The outcome of evaluating one window of a model.

    ``status`` is ``"ok"`` or ``"insufficient_data"``; ``details`` is free-form
    JSON (quality metrics, the evaluated profile version, ...).
    ``evaluated_at`` is set by the store when the row is written and is
    ignored on input.
    """

    model: str
    window_start: float
    window_end: float
    rows: int
    status: str
    dataset_drift: bool
    drift_share: float
    prediction_drift: bool | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    evaluated_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class FeatureResultRow:
    """One drift test of one feature in one window; ``p_value`` is None for distances."""

    model: str
    window_start: float
    feature: str
    method: str
    kind: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drift: bool
    effect_size: float | None
    missing_share: float
    status: str
    detectable: bool | None = None
    material: bool | None = None
    effect_size_lower: float | None = None
    min_effect_size: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PredictionRow:
    """A prediction kept for a later label join: predicted ``label`` and/or ``score``."""

    model: str
    request_id: str
    event_time: float
    window_start: float
    label: str | None = None
    score: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class LabelRow:
    """The true ``label`` of the prediction ``request_id`` of ``model``."""

    model: str
    request_id: str
    label: str
    event_time: float


class JoinedPrediction(NamedTuple):
    """A prediction that has its true label: predicted label, score, and the true label."""

    predicted_label: str | None
    score: float | None
    label: str


@dataclass(frozen=True, kw_only=True, slots=True)
class IncidentRow:
    """A firing episode of ``rule`` for ``subject`` of ``model``, as stored in ``alert_incidents``.

    ``id`` must be unique across models, rules and subjects
    (:func:`monitor.store.alerting.incident_key` derives one). ``status`` is ``"firing"``
    or ``"resolved"``; ``reason`` says why a resolved one ended (``"clean_windows"``,
    ``"model_replaced"``, ...). ``created_at`` and ``updated_at`` are set by the store and
    ignored on input (a rewritten incident keeps its first ``created_at``).
    """

    id: str
    model: str
    rule: str
    subject: str
    severity: str
    status: str
    started_window_start: float
    last_window_end: float
    resolved_window_end: float | None = None
    reason: str | None = None
    retrain_requested: bool = False
    created_at: float | None = None
    updated_at: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class EventRow:
    """An alert event to store and deliver to each of ``targets``.

    ``payload`` is the event as ``alerts.events.event_to_json`` stores it; the other
    fields repeat what identifies it (``type`` is an ``EventType`` value) so that it can
    be listed without parsing the payload. Read back, ``targets`` are those it was
    queued for.
    """

    event_id: str
    model: str
    rule: str
    subject: str
    incident: str
    type: str
    created_at: float
    payload: bytes
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxRow:
    """Where the delivery of event ``event_id`` to ``target`` stands (``alert_outbox``).

    ``state`` is ``"pending"``, ``"delivered"`` or ``"dead"``; ``attempts`` counts the
    attempts made; ``lease_owner`` and ``lease_expires_at`` are set while a deliverer
    holds it.
    """

    event_id: str
    target: str
    state: str
    attempts: int
    next_attempt_at: float
    created_at: float
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None

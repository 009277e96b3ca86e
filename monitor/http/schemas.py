"""The API's response models and the one mapper from stored window rows to their JSON."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.records import LABEL_JSON_SCHEMA, PREDICTION_JSON_SCHEMA
from monitor.store import FeatureResultRow, WindowSummaryRow

log = logging.getLogger(__name__)

# --- response models -----------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Health(_Out):
    """The process is alive."""

    status: Literal["ok"] = "ok"


class Readiness(_Out):
    """Whether the service can do its work: each dependency is ``"ok"`` or why not."""

    status: Literal["ok", "unavailable"]
    database: str = Field(description='"ok", or "unreachable: ..." (URL password masked)')
    broker: str = Field(description='"ok", or "unreachable: ..."')


class WindowSettings(_Out):
    """A model's event-time windows, in seconds."""

    size_s: float
    hop_s: float | None = Field(description="null for tumbling windows")
    allowed_lateness_s: float
    min_records: int


class PredictionSettings(_Out):
    """Which part of the prediction is monitored, and as which kind of column."""

    field: Literal["score", "label"]
    kind: str


class LastWindow(_Out):
    """The outcome of one evaluated window (times in epoch seconds and ISO 8601 UTC)."""

    window_start: float
    window_end: float
    start: str
    end: str
    rows: int
    status: str = Field(description='"ok" or "insufficient_data"')
    dataset_drift: bool
    drift_share: float | None


class ModelInfo(_Out):
    """A configured model, its newest reference profile and its last evaluated window."""

    name: str
    window: WindowSettings
    prediction: PredictionSettings
    profile_version: int | None = Field(description="newest stored reference; null if none")
    last_window: LastWindow | None


class FeatureResult(_Out):
    """One drift test of one feature in a window; ``p_value`` is null for distances."""

    feature: str
    method: str
    kind: str
    statistic: float | None
    p_value: float | None
    threshold: float | None
    drift: bool
    detectable: bool | None
    material: bool | None
    effect_size: float | None
    effect_size_lower: float | None
    min_effect_size: float | None
    missing_share: float | None
    status: str


class Window(LastWindow):
    """An evaluated window with every feature's result."""

    prediction_drift: bool | None
    evaluated_at: float | None
    details: dict[str, Any]
    features: list[FeatureResult]


class WindowPage(_Out):
    """Windows newest first; pass ``next`` as ``before`` for the next page (null: no more)."""

    model: str
    windows: list[Window]
    next: float | None


class Rejection(_Out):
    """A record that was not produced, and why; ``index`` is its position in the body."""

    index: int
    reason: str = Field(description="an invalid-record reason, or broker_unavailable")
    detail: str
    field: str | None = None


class IngestResult(_Out):
    """How many records went to Kafka, and which did not."""

    accepted: int
    rejected: list[Rejection]


class ReferenceResult(_Out):
    """The reference profile stored from an upload, and the first window it is used for.

    ``effective_from``: the start of that window (absent: from the first window,
    nothing consumed yet); ``model_version``: the one given with the upload (absent: none).
    """

    model: str
    version: int
    columns: list[str]
    rows: int
    model_version: str | None = None
    effective_from: datetime | None = None


class ErrorDetail(_Out):
    """An error: one sentence saying what is wrong."""

    detail: str


ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    HTTPStatus.NOT_FOUND: {"model": ErrorDetail, "description": "Unknown model."},
    HTTPStatus.SERVICE_UNAVAILABLE: {"model": ErrorDetail, "description": "Database unavailable."},
}


AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    HTTPStatus.UNAUTHORIZED: {
        "model": ErrorDetail,
        "description": "No bearer token, or a malformed Authorization header.",
    },
    HTTPStatus.FORBIDDEN: {
        "model": ErrorDetail,
        "description": "A wrong token (or, on writes, http.writes: disabled).",
    },
}


_RECORD_SCHEMA: Final[dict[str, Any]] = {"oneOf": [PREDICTION_JSON_SCHEMA, LABEL_JSON_SCHEMA]}


RECORDS_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [_RECORD_SCHEMA, {"type": "array", "items": _RECORD_SCHEMA}]}
            },
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one JSON record per line"}
            },
        },
    }
}


REFERENCE_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "a .csv, .parquet or .jsonl file",
                        }
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
            "application/octet-stream": {
                "schema": {"type": "string", "format": "binary", "description": "needs ?format="}
            },
        },
    }
}


# --- helpers -------------------------------------------------------------------------------


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def finite(value: float | None) -> float | None:
    """``value``, or None when unknown (NaN or infinite cannot be written as JSON)."""
    return None if value is None or not math.isfinite(value) else value


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None, recursively."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def summary_fields(row: WindowSummaryRow) -> dict[str, Any]:
    return {
        "window_start": row.window_start,
        "window_end": row.window_end,
        "start": iso(row.window_start),
        "end": iso(row.window_end),
        "rows": row.rows,
        "status": row.status,
        "dataset_drift": row.dataset_drift,
        "drift_share": finite(row.drift_share),
    }


def feature_result(row: FeatureResultRow) -> FeatureResult:
    return FeatureResult(
        feature=row.feature,
        method=row.method,
        kind=row.kind,
        statistic=finite(row.statistic),
        p_value=finite(row.p_value),
        threshold=finite(row.threshold),
        drift=row.drift,
        detectable=row.detectable,
        material=row.material,
        effect_size=finite(row.effect_size),
        effect_size_lower=finite(row.effect_size_lower),
        min_effect_size=finite(row.min_effect_size),
        missing_share=finite(row.missing_share),
        status=row.status,
    )


class Incident(_Out):
    """One incident (``driftline alerts list``): a firing or resolved episode of a rule."""

    id: str
    model: str
    rule: str
    subject: str = Field(description="the feature, or empty for a rule about the whole window")
    severity: str
    status: Literal["firing", "resolved"]
    started: str = Field(description="start of the incident's first breaching window, ISO 8601")
    started_window_start: float
    last_window_end: float
    resolved_window_end: float | None
    reason: str | None = Field(description="why it resolved: clean_windows, model_replaced, ...")
    retrain_requested: bool
    updated_at: float | None


class TargetDelivery(_Out):
    """Where an event's delivery to one target stands."""

    target: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: float
    last_error: str | None


class DeliveryAttemptOut(_Out):
    """One delivery attempt of an event to a target."""

    target: str
    attempt: int
    outcome: str
    status_code: int | None
    started_at: float
    finished_at: float
    error: str | None


class AlertEventOut(_Out):
    """One alert event with its delivery state per target and every attempt."""

    id: str
    type: str
    model: str
    rule: str
    subject: str
    incident: str
    created_at: float
    targets: list[TargetDelivery]
    attempts: list[DeliveryAttemptOut]


class Redelivered(_Out):
    """What ``POST /api/events/{id}/redeliver`` did: targets queued again, targets not dead."""

    id: str
    requeued: list[str]
    not_dead: list[str]


__all__ = [
    "AUTH_ERRORS",
    "ERRORS",
    "RECORDS_BODY",
    "REFERENCE_BODY",
    "AlertEventOut",
    "DeliveryAttemptOut",
    "ErrorDetail",
    "FeatureResult",
    "Health",
    "Incident",
    "IngestResult",
    "LastWindow",
    "ModelInfo",
    "PredictionSettings",
    "Readiness",
    "Redelivered",
    "ReferenceResult",
    "Rejection",
    "TargetDelivery",
    "Window",
    "WindowPage",
    "WindowSettings",
    "feature_result",
    "finite",
    "iso",
    "json_safe",
    "summary_fields",
]

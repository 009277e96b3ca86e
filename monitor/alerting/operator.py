"""Operator tools over the alerting layer: incidents, events, re-delivery, backtests, rule export.

Shared by ``driftline alerts ...`` and the HTTP API (``GET /api/alerts``,
``GET /api/events``, ``POST /api/events/{id}/redeliver``). Results are typed
rows of the store; the edges (the CLI's tables, the API's schemas) turn them
into text or JSON.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from alerts.backtest import BacktestReport, backtest
from alerts.events import iso_utc
from alerts.prometheus_rules import export_rules
from monitor.config.service import ModelConfig, ServiceConfig
from monitor.store import Store
from monitor.store.alerting import AlertStore, EventDelivery, SqlOutbox
from monitor.store.rows import IncidentRow

#: Windows read per page when a backtest walks the stored history.
_PAGE = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Redelivery:
    """What a re-delivery request did: the targets put back in the queue, and those not dead."""

    event_id: str
    requeued: tuple[str, ...]
    not_dead: tuple[str, ...]


class UnknownEventError(LookupError):
    """No stored event has this id."""

    def __init__(self, event_id: str) -> None:
        super().__init__(f"no alert event {event_id!r} (driftline alerts events lists them)")


def incidents(
    store: Store, *, model: str | None = None, status: str | None = None, limit: int = 100
) -> list[IncidentRow]:
    """The incidents, most recently updated first; ``status`` ``"firing"`` or ``"resolved"``."""
    if status not in (None, "firing", "resolved"):
        raise ValueError(f"status: one of firing, resolved; got {status!r}")
    return AlertStore(store).incidents(model=model, status=status, limit=limit)


def events(store: Store, *, model: str | None = None, limit: int = 100) -> list[EventDelivery]:
    """The events, newest first, each with its delivery state per target and its attempts."""
    return AlertStore(store).events(model=model, limit=limit)


def redeliver(
    store: Store, event_id: str, *, target: str | None = None, clock: float | None = None
) -> Redelivery:
    """Put a dead event back in the queue for ``target`` (default: every target it is dead for).

    Its attempts are kept; the delivery engine picks it up at its next poll.
    Raises :class:`UnknownEventError` for an unknown id, ``ValueError`` for a
    target the event was not queued for.
    """
    found = AlertStore(store).events(event_id=event_id, limit=1)
    if not found:
        raise UnknownEventError(event_id)
    rows = {row.target: row for row in found[0].outbox}
    if target is not None and target not in rows:
        raise ValueError(
            f"event {event_id!r} was not queued for target {target!r}; "
            f"its targets: {', '.join(sorted(rows)) or 'none'}"
        )
    outbox = SqlOutbox(store)
    now = time.time() if clock is None else clock
    chosen = [target] if target is not None else sorted(rows)
    requeued = tuple(
        t for t in chosen if rows[t].state == "dead" and outbox.redeliver(event_id, t, now)
    )
    return Redelivery(
        event_id=event_id,
        requeued=requeued,
        not_dead=tuple(t for t in chosen if t not in requeued),
    )


def backtest_model(
    config: ServiceConfig, store: Store, model: str, *, since: float | None = None
) -> BacktestReport:
    """Replay ``model``'s configured rules over its stored windows (from ``since``), in order.

    Nothing is written and nothing is sent: what the rules would have fired,
    repeated, resolved and asked to retrain, to tune thresholds on history.
    """
    rules = config.model(model).alerts.effective
    results = []
    position, inclusive = since, True
    while True:
        page = store.window_results_after(model, position, _PAGE, inclusive=inclusive)
        results.extend(page)
        if len(page) < _PAGE:
            break
        position, inclusive = page[-1].window_start, False
    return backtest(rules, results)


def prometheus_rules(config: ServiceConfig, models: Sequence[ModelConfig] | None = None) -> str:
    """Prometheus alerting rules equivalent (as far as the metrics allow) to the configured ones."""
    chosen = list(models or config.models)
    return export_rules(
        {m.name: m.alerts.effective for m in chosen},
        {m.name: m.window.spec.size_s for m in chosen},
        drift_share={m.name: m.drift.drift_share for m in chosen},
    )


def incident_json(row: IncidentRow) -> dict[str, Any]:
    """One incident as JSON (times as ISO 8601 UTC and epoch seconds)."""
    return {
        "id": row.id,
        "model": row.model,
        "rule": row.rule,
        "subject": row.subject,
        "severity": row.severity,
        "status": row.status,
        "started": iso_utc(row.started_window_start),
        "started_window_start": row.started_window_start,
        "last_window_end": row.last_window_end,
        "resolved_window_end": row.resolved_window_end,
        "reason": row.reason,
        "retrain_requested": row.retrain_requested,
        "updated_at": row.updated_at,
    }


def event_json(delivery: EventDelivery) -> dict[str, Any]:
    """One event with its delivery state per target and every attempt (no payload secrets)."""
    event = delivery.event
    return {
        "id": event.event_id,
        "type": event.type,
        "model": event.model,
        "rule": event.rule,
        "subject": event.subject,
        "incident": event.incident,
        "created_at": event.created_at,
        "targets": [
            {
                "target": row.target,
                "state": row.state,
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at,
                "last_error": row.last_error,
            }
            for row in delivery.outbox
        ],
        "attempts": [
            {
                "target": a.target,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "started_at": a.started_at,
                "finished_at": a.finished_at,
                "error": a.error,
            }
            for a in delivery.attempts
        ],
    }


def backtest_json(report: BacktestReport) -> dict[str, Any]:
    """A backtest as JSON: counts per rule, then every event it would have sent, in order."""
    return {
        "windows": report.windows,
        "rules": [
            {
                "model": c.model,
                "rule": c.rule,
                "windows": c.windows,
                "windows_breaching": c.windows_breaching,
                "windows_unknown": c.windows_unknown,
                "fired": c.fired,
                "repeats": c.repeats,
                "resolved": c.resolved,
                "retrain": c.retrain,
            }
            for c in report.counts
        ],
        "events": [
            {
                "type": e.type,
                "model": e.model,
                "rule": e.rule,
                "subject": e.subject,
                "severity": e.severity,
                "window_start": iso_utc(e.window_start),
                "window_end": iso_utc(e.window_end),
                "summary": e.summary,
            }
            for e in report.emissions
        ],
    }


__all__ = [
    "Redelivery",
    "UnknownEventError",
    "backtest_json",
    "backtest_model",
    "event_json",
    "events",
    "incident_json",
    "incidents",
    "prometheus_rules",
    "redeliver",
]

"""Delivering the outbox to the configured targets: requests, secrets, statuses, metrics.

:class:`alerts.delivery.Deliverer` claims events from the store's outbox
(:class:`monitor.store.SqlOutbox`) with a lease, sends them with bounded
concurrency and retries failures with backoff; this module gives it what
depends on the configuration:

* :class:`TargetRequests` renders a stored event for its target: a webhook in
  the target's ``format`` (signed with the secret read from its environment
  variable at each attempt, so a rotated secret takes effect without a
  restart), an Alertmanager alert, or a retraining request for the target's
  job runner. Secrets are never logged nor stored.
* :class:`StatusSender` counts some non-2xx answers as delivered: Airflow
  answers 409 to a ``dag_run_id`` it already has, which is our idempotency
  key, so the run exists (docs/job-runners.md).
* :class:`DeliveryCounters` feeds ``driftline_webhook_deliveries_total{target,
  outcome}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from alerts.alertmanager import render_alertmanager_request
from alerts.delivery import Deliverer, HttpRequest, Send, UrllibSender
from alerts.events import event_from_json
from alerts.formats import render_request
from alerts.outbox import Outbox, OutboxEvent
from alerts.retrain import render_retrain_request
from alerts.targets import (
    AlertmanagerTarget,
    RetrainTarget,
    Target,
    WebhookTarget,
    resolve_secret,
    target_headers,
)
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics


class UnknownTargetError(LookupError):
    """An outbox event names a target the configuration no longer has."""

    def __init__(self, target: str) -> None:
        super().__init__(
            f"target {target!r} is not in alerts.targets (removed from the config?); the event "
            "is retried until it is dead, and can be re-delivered once the target is back"
        )


@dataclass(frozen=True, slots=True)
class TargetRequest:
    """A rendered request and the non-2xx statuses that also mean "delivered"."""

    method: str
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes
    also_delivered: frozenset[int] = frozenset()


class TargetRequests:
    """Renders an outbox event for its target (the ``render`` of the Deliverer)."""

    def __init__(
        self,
        targets: Sequence[Target],
        *,
        source: str = "/driftline",
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.source = source
        self.environ = os.environ if environ is None else environ

    def __call__(self, outboxed: OutboxEvent, now: float) -> TargetRequest:
        """Return the request that delivers ``outboxed`` to its target at time ``now``."""
        target = self.targets.get(outboxed.target)
        if target is None:
            raise UnknownTargetError(outboxed.target)
        event = event_from_json(outboxed.payload)
        headers = target_headers(target, self.environ)
        also: frozenset[int] = frozenset()
        request: HttpRequest
        if isinstance(target, WebhookTarget):
            secret = (
                None
                if target.secret_env is None
                else resolve_secret(target.secret_env, self.environ, purpose="webhook secret")
            )
            request = render_request(
                event, target, now=now, secret=secret, headers=headers, source=self.source
            )
        elif isinstance(target, AlertmanagerTarget):
            request = render_alertmanager_request([event], target, now=now, headers=headers)
        else:
            assert isinstance(target, RetrainTarget)
            request = render_retrain_request(event, target, headers=headers)
            if target.kind == "airflow":
                also = frozenset({409})  # the dag_run_id (our event id) exists: triggered before
        return TargetRequest(
            method=request.method,
            url=request.url,
            headers=tuple(request.headers),
            body=request.body,
            also_delivered=also,
        )


class StatusSender:
    """Sends with ``inner``; a status the request lists in ``also_delivered`` counts as 200."""

    def __init__(self, inner: Send | None = None) -> None:
        self.inner: Send = inner or UrllibSender()

    def __call__(self, request: HttpRequest, timeout_s: float) -> int:
        """Send ``request``; return its status (200 for an ``also_delivered`` one)."""
        status = self.inner(request, timeout_s)
        also: frozenset[int] = getattr(request, "also_delivered", frozenset())
        return 200 if status in also else status


class DeliveryCounters:
    """The Deliverer's metrics: every attempt's outcome by target (the backlog is scraped)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def delivered(self, target: str, outcome: str) -> None:
        """Count one attempt in ``driftline_webhook_deliveries_total{target, outcome}``."""
        self.metrics.webhook_deliveries_total.labels(target=target, outcome=outcome).inc()

    def backlog(self, pending: int, dead: int) -> None:
        """Nothing: ``driftline_outbox_events`` reads the outbox when Prometheus scrapes."""


def deliverer(
    config: ServiceConfig,
    outbox: Outbox,
    metrics: Metrics,
    *,
    owner: str,
    send: Send | None = None,
    environ: Mapping[str, str] | None = None,
) -> Deliverer:
    """The service's Deliverer: the configured targets and policy over ``outbox``."""
    alerts = config.alerts
    return Deliverer(
        outbox=outbox,
        render=TargetRequests(alerts.targets, source=alerts.source, environ=environ),
        send=StatusSender(send),
        policy=alerts.delivery.policy(),
        owner=owner,
        metrics=DeliveryCounters(metrics),
    )


__all__ = [
    "DeliveryCounters",
    "StatusSender",
    "TargetRequest",
    "TargetRequests",
    "UnknownTargetError",
    "deliverer",
]

"""Keeping firing incidents alive in Alertmanager: re-posting them every re-send interval.

Alertmanager resolves an alert by itself at its ``endsAt`` (or, without one, after its
``resolve_timeout``) unless the client posts it again before then; Prometheus re-sends
its firing alerts for that reason. The outbox (:mod:`monitor.alerting.delivery`) posts an
alert when its incident fires, repeats (the rules' ``repeat_interval``, 6 h by default)
and resolves: that alone would let Alertmanager resolve a still-firing incident three
re-send intervals after each post.

:class:`AlertmanagerRefresher` closes the gap. :meth:`AlertmanagerRefresher.run_once`
reads every firing incident from the database, finds the latest firing event
(``drift.detected``, ``quality.degraded``, ``data_quality.failed``) of each, and posts
them again to every ``alertmanager`` target, in one ``POST /api/v2/alerts`` per target,
with ``endsAt = now + 3 x resend_interval_s``
(:func:`alerts.alertmanager.render_alertmanager_request`).
The service runs it every ``resend_interval_s`` (:attr:`AlertmanagerRefresher.interval_s`,
the smallest of the targets'), so an alert outlives two missed refreshes before
Alertmanager resolves it; once driftline stops (or loses its database) for longer, the
alerts resolve by themselves instead of firing forever.

Best effort: a failed post (connection refused, timeout, non-2xx answer, a header
variable that is not set) is logged -- target name and error, never a header value -- and
retried at the next run. Nothing here is durable, and nothing needs to be: the outbox
still delivers every fire and resolve with retries, and a re-post carries the labels,
``startsAt`` and annotations of an alert Alertmanager already has, so repeating it, or
several processes each refreshing the same alerts, changes nothing but ``endsAt``.

One race is handled: an incident read as firing may resolve, and its resolve be
delivered, before this run's post arrives, which would make Alertmanager fire the alert
again until its new ``endsAt``. So after posting, the incidents are read again and the
latest ``alert.resolved`` event of each that ended meanwhile is posted too.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence

from alerts.alertmanager import render_alertmanager_request
from alerts.delivery import Send
from alerts.events import AlertEvent, EventType, event_from_json
from alerts.targets import AlertmanagerTarget, target_headers
from monitor.alerting.delivery import StatusSender
from monitor.config.service import ServiceConfig
from monitor.store.alerting import AlertStore, incident_key
from monitor.store.models import FIRING
from monitor.store.rows import IncidentRow

log = logging.getLogger(__name__)

#: The event types that fire (or repeat) an incident: what a refresh re-posts.
REFRESHED_TYPES = frozenset(
    {EventType.DRIFT_DETECTED, EventType.QUALITY_DEGRADED, EventType.DATA_QUALITY_FAILED}
)
_RESOLVED = frozenset({EventType.ALERT_RESOLVED})


class AlertmanagerRefresher:
    """Re-posts every firing incident's latest firing event to the Alertmanager targets.

    ``send`` sends one request (default :class:`~monitor.alerting.delivery.StatusSender`
    over urllib); ``clock`` gives ``now`` for ``endsAt``; ``environ`` holds the variables
    that ``headers_env`` names (default ``os.environ``, read at each run). At most
    ``max_alerts`` firing incidents are refreshed per run; the events of a model are read
    newest first, ``scan`` at a time, until each incident's firing event is found.
    """

    def __init__(
        self,
        config: ServiceConfig,
        alert_store: AlertStore,
        *,
        send: Send | None = None,
        clock: Callable[[], float] = time.time,
        environ: Mapping[str, str] | None = None,
        max_alerts: int = 10_000,
        scan: int = 1_000,
    ) -> None:
        self.config = config
        self.alert_store = alert_store
        self.send: Send = send if send is not None else StatusSender()
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.max_alerts = max_alerts
        self.scan = scan
        self.targets: tuple[AlertmanagerTarget, ...] = tuple(
            t for t in config.alerts.targets if isinstance(t, AlertmanagerTarget)
        )

    @property
    def interval_s(self) -> float | None:
        """How often to run: the smallest ``resend_interval_s`` of the targets (None: none)."""
        return min((t.resend_interval_s for t in self.targets), default=None)

    def run_once(self) -> int:
        """Post every firing incident to every Alertmanager target; return the alerts posted.

        Counts one per alert per target whose request was answered 2xx (the resolves of
        incidents that ended meanwhile included). Never raises for a failed post; a
        database error propagates (the caller logs it and retries at the next run).
        """
        if not self.config.alerts.enabled or not self.targets:
            return 0
        incidents = self._firing_incidents()
        if not incidents:
            return 0
        firing = self._latest_events(incidents, REFRESHED_TYPES)
        if not firing:
            return 0
        now = self.clock()
        reached = [t for t in self.targets if self._post(t, list(firing.values()), now)]
        posted = len(firing) * len(reached)
        if reached:
            posted += self._resolve_ended(firing, reached)
        return posted

    def _firing_incidents(self) -> list[IncidentRow]:
        incidents = self.alert_store.incidents(status=FIRING, limit=self.max_alerts)
        if len(incidents) >= self.max_alerts:
            log.warning(
                "%d or more firing incidents: only the %d most recently updated are refreshed "
                "in Alertmanager",
                self.max_alerts,
                self.max_alerts,
            )
        return incidents

    def _latest_events(
        self, incidents: Sequence[IncidentRow], types: Collection[EventType]
    ) -> dict[str, AlertEvent]:
        """The newest event of one of ``types`` of each incident, by incident id."""
        by_model: dict[str, set[str]] = defaultdict(set)
        for incident in incidents:
            by_model[incident.model].add(incident.id)
        found: dict[str, AlertEvent] = {}
        for model, wanted in by_model.items():
            limit = self.scan
            while True:
                deliveries = self.alert_store.events(model=model, limit=limit)
                for delivery in deliveries:  # newest first: the first match is the latest
                    row = delivery.event
                    if row.type not in types:
                        continue
                    key = incident_key(row.model, row.rule, row.subject, row.incident)
                    if key in wanted and key not in found:
                        found[key] = event_from_json(row.payload)
                missing = wanted - found.keys()
                if not missing or len(deliveries) < limit:
                    break
                limit *= 4
            if missing and types is REFRESHED_TYPES:  # an ended one may have no resolve event
                log.warning(
                    "%d firing incident(s) of model %s have no stored firing event: not "
                    "refreshed in Alertmanager",
                    len(missing),
                    model,
                )
        return found

    def _post(self, target: AlertmanagerTarget, events: Sequence[AlertEvent], now: float) -> bool:
        """Post ``events`` to ``target`` in one request; return whether it was answered 2xx."""
        try:
            headers = target_headers(target, self.environ)
            request = render_alertmanager_request(events, target, now=now, headers=headers)
            status = self.send(request, target.timeout_s)
        except Exception as error:  # best effort: refused, timed out, a variable unset
            log.warning(
                "refreshing %d alert(s) in Alertmanager target %s failed (%s: %s); retried "
                "at the next refresh",
                len(events),
                target.name,
                type(error).__name__,
                error,
            )
            return False
        if not 200 <= status < 300:
            log.warning(
                "Alertmanager target %s answered %d to a refresh of %d alert(s); retried at "
                "the next refresh",
                target.name,
                status,
                len(events),
            )
            return False
        log.debug("refreshed %d alert(s) in Alertmanager target %s", len(events), target.name)
        return True

    def _resolve_ended(
        self, posted: Mapping[str, AlertEvent], targets: Sequence[AlertmanagerTarget]
    ) -> int:
        """Post the resolves of posted incidents that stopped firing meanwhile (module doc)."""
        still = {i.id for i in self.alert_store.incidents(status=FIRING, limit=self.max_alerts)}
        ended = [
            IncidentRow(
                id=key,
                model=event.model,
                rule=event.rule,
                subject=event.subject,
                severity=event.severity,
                status="resolved",
                started_window_start=event.window_start,
                last_window_end=event.window_end,
            )
            for key, event in posted.items()
            if key not in still
        ]
        if not ended:
            return 0
        resolves = list(self._latest_events(ended, _RESOLVED).values())
        if not resolves:
            return 0
        now = self.clock()
        return len(resolves) * sum(self._post(t, resolves, now) for t in targets)


__all__ = ["REFRESHED_TYPES", "AlertmanagerRefresher"]

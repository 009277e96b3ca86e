"""Incidents routed through a real Prometheus Alertmanager, and kept alive while they fire.

The seeded stream of :mod:`tests.service.test_alerting` (windows 3-6 drifted, clean again
from 7) is replayed into SQLite; :class:`monitor.alerting.rules.AlertRules` reads it in two
steps (``batch=6``: windows 0-5, when every incident fires, then the rest, when each
resolves) and the outbox is delivered to an ``alertmanager`` target: a real Alertmanager
(0.25, clustering off) that routes everything to a local webhook receiver. What we assert
is what Alertmanager says: its ``GET /api/v2/alerts`` and the notifications it sends.

The refresher tests stop after the first step, so the incidents stay firing, and use a
re-send interval of 1 s: each post says the alert ends 3 s later.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client import CollectorRegistry

from alerts.alertmanager import alertname
from alerts.delivery import UrllibSender
from monitor.alerting.alertmanager import AlertmanagerRefresher
from monitor.alerting.delivery import StatusSender, deliverer
from monitor.alerting.rules import AlertRules
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.service.replay import replay
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox
from tests.alerts.receiver import Receiver
from tests.servers import (
    Alertmanager,
    ServerStartError,
    alertmanager_binary,
    skip_or_fail,
    start_alertmanager,
)
from tests.service.harness import wait_until
from tests.service.streams import DRIFTED
from tests.service.test_alerting import RULES, stream_config, stream_log

pytestmark = pytest.mark.integration

#: The windows the first step of the rules reads: every incident fires by window 4.
FIRST_STEP = 6
#: The incidents of RULES on this stream: a feature_drift one per drifted feature, one share.
INCIDENTS = {*(("feature_drift", f) for f in DRIFTED), ("drift_share", "")}
NO_PROXY = UrllibSender(proxies={})


def alertmanager_config(receiver_url: str) -> str:
    """Every alert in its own group, to the receiver, 1 s after it fires, resolves notified."""
    return yaml.safe_dump(
        {
            "route": {
                "receiver": "hook",
                "group_by": ["..."],
                "group_wait": "1s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [{"url": receiver_url, "send_resolved": True}],
                }
            ],
        }
    )


@pytest.fixture
def hook() -> Iterator[Receiver]:
    """The webhook receiver Alertmanager notifies."""
    with Receiver() as running:
        yield running


@pytest.fixture
def alertmanager(tmp_path: Path, hook: Receiver) -> Iterator[Alertmanager]:
    """A real Alertmanager on a free port of 127.0.0.1, stopped with SIGTERM after the test."""
    if alertmanager_binary() is None:
        skip_or_fail("no Alertmanager binary: run `make servers` (prometheus-alertmanager)")
    try:
        server = start_alertmanager(alertmanager_config(hook.url), tmp_path / "alertmanager")
    except ServerStartError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        status = server.stop()
        assert status == 0, f"Alertmanager exited with {status}:\n{server.log()}"


def configured(tmp_path: Path, alertmanager_url: str, resend_interval_s: float) -> ServiceConfig:
    """The stream's model with RULES and one ``alertmanager`` target (its reference saved)."""
    alerts = {
        "targets": [
            {
                "type": "alertmanager",
                "name": "am",
                "url": alertmanager_url,
                "timeout_s": 5,
                "resend_interval_s": resend_interval_s,
            }
        ],
        "delivery": {"timeout_s": 5, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
    }
    return stream_config(tmp_path, alerts, RULES)


class World:
    """The replayed stream in SQLite, its rules (two steps), and delivery to Alertmanager."""

    def __init__(self, tmp_path: Path, alertmanager_url: str, resend_interval_s: float) -> None:
        self.config = configured(tmp_path, alertmanager_url, resend_interval_s)
        log = tmp_path / "log.jsonl"
        stream_log(log)
        replay(self.config, log)
        self.metrics = Metrics(CollectorRegistry())
        self.store = Store.connect(self.config.database_url())
        self.alert_store = AlertStore(self.store)
        self.outbox = SqlOutbox(self.store)
        self.rules = AlertRules(self.config, self.store, self.alert_store, batch=FIRST_STEP)

    def step(self) -> None:
        """Feed the next windows to the rules and deliver every event they queued."""
        assert [a.committed for a in self.rules.run_once()] == [True]
        with deliverer(
            self.config, self.outbox, self.metrics, owner="test", send=NO_PROXY
        ) as sending:
            wait_until(
                lambda: sending.run_once() is not None and not self.outbox.counts().get("pending"),
                30,
                lambda: f"outbox not drained: {self.outbox.counts()}",
            )
        assert self.outbox.counts().get("dead", 0) == 0, self.outbox.counts()

    def refresher(self) -> AlertmanagerRefresher:
        return AlertmanagerRefresher(
            self.config, self.alert_store, send=StatusSender(NO_PROXY), environ={}
        )

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def world(tmp_path: Path, alertmanager: Alertmanager, request: Any) -> Iterator[World]:
    resend = getattr(request, "param", 60.0)
    built = World(tmp_path, alertmanager.url, resend)
    try:
        yield built
    finally:
        built.close()


# --- reading Alertmanager and its notifications -------------------------------------------


def active_alerts(alertmanager: Alertmanager) -> dict[tuple[str, str], dict[str, Any]]:
    """Alertmanager's active alerts (resolved ones are not listed) by (rule, feature)."""
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
        f"{alertmanager.url}/api/v2/alerts?active=true&silenced=false&inhibited=false", timeout=5
    ) as response:
        alerts = orjson.loads(response.read())
    return {(a["labels"]["rule"], a["labels"].get("feature", "")): a for a in alerts}


def notified(hook: Receiver) -> dict[tuple[str, str], list[str]]:
    """Per (rule, feature): the statuses Alertmanager notified, in order."""
    seen: dict[tuple[str, str], list[str]] = {}
    for request in list(hook.requests):
        payload = orjson.loads(request.body)
        for alert in payload["alerts"]:
            labels = alert["labels"]
            seen.setdefault((labels["rule"], labels.get("feature", "")), []).append(alert["status"])
    return seen


def parse_time(value: str) -> float:
    """An Alertmanager RFC 3339 time (nanoseconds, ``Z``) as Unix seconds."""
    from datetime import datetime

    head, _, rest = value.rstrip("Z").partition(".")
    fraction = float(f"0.{rest[:6]}") if rest else 0.0
    return datetime.fromisoformat(head + "+00:00").timestamp() + fraction


# --- the tests ------------------------------------------------------------------------------


def test_incidents_are_routed_firing_then_resolved(world, alertmanager, hook):
    world.step()  # windows 0-5: every incident fires
    firing = {(i.rule, i.subject) for i in world.alert_store.incidents(status="firing")}
    assert firing == INCIDENTS
    active = active_alerts(alertmanager)
    assert set(active) == INCIDENTS
    for (rule, feature), alert in active.items():
        expected = {"alertname": alertname(rule), "model": "credit", "rule": rule}
        assert alert["labels"].get("feature", "") == feature
        assert alert["labels"] | expected == alert["labels"]
        assert alert["labels"]["severity"] in ("info", "warning", "critical")
        assert alert["status"]["state"] == "active"
    wait_until(
        lambda: set(notified(hook)) == INCIDENTS,
        20,
        lambda: f"Alertmanager notified {notified(hook)}",
    )
    for request in hook.requests:
        payload = orjson.loads(request.body)
        assert payload["status"] == "firing"
        for alert in payload["alerts"]:
            labels = alert["labels"]
            assert labels["alertname"] == alertname(labels["rule"])
            assert labels["model"] == "credit"
            assert (labels["rule"], labels.get("feature", "")) in INCIDENTS
            assert (
                labels["severity"]
                == active[(labels["rule"], labels.get("feature", ""))]["labels"]["severity"]
            )
            if labels["rule"] == "feature_drift":
                assert labels["feature"] in DRIFTED
            else:
                assert "feature" not in labels

    world.step()  # windows 6-10: every incident resolves
    assert world.alert_store.incidents(status="firing") == []
    assert active_alerts(alertmanager) == {}
    wait_until(
        lambda: all(s[-1:] == ["resolved"] for s in notified(hook).values()),
        20,
        lambda: f"Alertmanager notified {notified(hook)}",
    )
    # Each alert: notified firing (once: repeat_interval is 1 h), then resolved.
    assert notified(hook) == {key: ["firing", "resolved"] for key in INCIDENTS}
    resolved = [orjson.loads(r.body) for r in hook.requests][-len(INCIDENTS) :]
    assert all(p["status"] == "resolved" for p in resolved)


@pytest.mark.parametrize("world", [1.0], indirect=True)
def test_the_refresher_keeps_a_firing_incident_active_past_its_ends_at(world, alertmanager, hook):
    world.step()  # windows 0-5: every incident fires, and never resolves in this test
    first = active_alerts(alertmanager)
    assert set(first) == INCIDENTS
    ends = max(parse_time(a["endsAt"]) for a in first.values())
    refresher = world.refresher()
    assert refresher.interval_s == 1.0
    # Refresh every second until well past the endsAt of the outbox's post (now + 3 s).
    while True:
        assert refresher.run_once() == len(INCIDENTS)
        if time.time() > ends + 2:
            break
        time.sleep(refresher.interval_s)
    active = active_alerts(alertmanager)
    assert set(active) == INCIDENTS
    assert all(parse_time(a["endsAt"]) > ends for a in active.values())
    # Same alerts, same start: a refresh changes only endsAt, and notifies no one again.
    for key, alert in active.items():
        assert alert["labels"] == first[key]["labels"]
        assert alert["fingerprint"] == first[key]["fingerprint"]
        assert parse_time(alert["startsAt"]) == pytest.approx(parse_time(first[key]["startsAt"]))
    assert all(statuses == ["firing"] for statuses in notified(hook).values())


@pytest.mark.parametrize("world", [1.0], indirect=True)
def test_without_the_refresher_alertmanager_resolves_a_firing_incident_itself(
    world, alertmanager, hook
):
    world.step()
    assert set(active_alerts(alertmanager)) == INCIDENTS
    assert {(i.rule, i.subject) for i in world.alert_store.incidents(status="firing")} == INCIDENTS
    # Nothing re-posts them: Alertmanager resolves each at its endsAt, and says so.
    wait_until(
        lambda: active_alerts(alertmanager) == {},
        20,
        lambda: f"still active: {sorted(active_alerts(alertmanager))}",
    )
    wait_until(
        lambda: notified(hook) == {key: ["firing", "resolved"] for key in INCIDENTS},
        20,
        lambda: f"Alertmanager notified {notified(hook)}",
    )


def test_a_refresh_that_fails_is_logged_and_skipped(world, alertmanager, caplog):
    world.step()
    refresher = world.refresher()
    alertmanager.stop()  # connection refused
    assert refresher.run_once() == 0
    assert "refreshing 3 alert(s) in Alertmanager target am failed" in caplog.text


def test_nothing_is_posted_without_firing_incidents(world, alertmanager):
    sent: list[Any] = []

    def send(request: Any, timeout_s: float) -> int:
        sent.append(request)
        return 200

    refresher = AlertmanagerRefresher(world.config, world.alert_store, send=send, environ={})
    assert refresher.run_once() == 0  # no window fed to the rules yet
    world.step()
    world.step()  # every incident resolved
    assert refresher.run_once() == 0
    assert sent == []


def test_an_incident_resolved_during_a_refresh_is_resolved_again(world, alertmanager):
    world.step()
    real = StatusSender(NO_PROXY)
    raced: list[bool] = []

    def racing(request: Any, timeout_s: float) -> int:
        # The incidents resolve, and their resolves reach Alertmanager, after the refresher
        # read them as firing but before its post lands: the post fires them again.
        if not raced:
            raced.append(True)
            world.step()
            assert active_alerts(alertmanager) == {}
        return real(request, timeout_s)

    refresher = AlertmanagerRefresher(world.config, world.alert_store, send=racing, environ={})
    # The stale firing alerts, then the resolves the refresher found after posting them.
    assert refresher.run_once() == 2 * len(INCIDENTS)
    assert raced == [True]
    assert active_alerts(alertmanager) == {}

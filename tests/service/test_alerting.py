"""The alerting layer on the service's stored windows: rules in order, once; the outbox; delivery.

A seeded stream drifts from window 3 to 6 and is clean again from window 7
(two features move: ``amount`` and ``channel``). It is replayed through the
service's windows into SQLite; :class:`monitor.alerting.rules.AlertRules`
reads the stored results and a real local HTTP receiver, verifying every
signature, receives the events from the outbox.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import sqlalchemy
import yaml
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.outbox import DeliveryAttempt
from alerts.signing import SignatureError, verify_driftline_signature
from detectors.drift import DriftSettings, compare_frames
from detectors.window_result import WindowResult
from monitor.alerting.delivery import deliverer
from monitor.alerting.rules import AlertRules
from monitor.analyses.reference import build_profile
from monitor.cli import main
from monitor.config.service import ServiceConfig
from monitor.http.app import create_app
from monitor.metrics import Metrics
from monitor.service.replay import replay
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox
from monitor.store.rows import PartialRow, ProgressRow, WindowSummaryRow
from tests.alerts.receiver import Receiver
from tests.servers import skip_or_fail
from tests.service.harness import wait_until
from tests.service.streams import DRIFTED, T0, Stream

SECRET = "s3cret-for-tests"
SECRET_ENV = "DRIFTLINE_TEST_WEBHOOK_SECRET"
DRIFTED_WINDOWS = range(3, 7)
WINDOWS = 11


def stream_log(path: Path) -> None:
    """Windows 0-2 clean, 3-6 drifted, 7-10 clean again, as a JSON-lines log."""
    drifting = Stream(model="credit", windows=WINDOWS, per_window=400, drift_from=3)
    clean = Stream(model="credit", windows=WINDOWS, per_window=400, drift_from=10_000, seed=2)
    lines = []
    for index in range(WINDOWS):
        source = drifting if index in DRIFTED_WINDOWS or index < 3 else clean
        lines += [value for _, value in source.records(index)]
    path.write_bytes(b"\n".join(lines) + b"\n")


def stream_config(
    tmp_path: Path, alerts: dict[str, Any], rules: list[dict[str, Any]]
) -> ServiceConfig:
    """The stream's model with ``rules`` and the ``alerts`` section; its reference is stored."""
    body = {
        "database": {"url": f"sqlite:///{tmp_path / 'driftline.db'}"},
        "alerts": alerts,
        "models": [
            {
                "name": "credit",
                "window": {"size": "1m", "allowed_lateness": "0s", "min_records": 50},
                "drift": {"correction": "bh"},
                "alerts": {"rules": rules},
            }
        ],
    }
    path = tmp_path / "service.yaml"
    path.write_text(yaml.safe_dump(body))
    config = ServiceConfig.load(path)
    store = Store.connect(config.database_url())
    try:
        reference = Stream(model="credit", windows=WINDOWS, per_window=400, drift_from=3)
        store.save_profile(
            "credit", build_profile(config.models[0], reference.reference()).to_bytes()
        )
    finally:
        store.close()
    return config


def configured(
    tmp_path: Path, url: str, rules: list[dict[str, Any]], trainer_url: str | None = None
) -> ServiceConfig:
    """A signed webhook target at ``url`` and a generic retrain target (``trainer_url``)."""
    alerts = {
        "targets": [
            {"type": "webhook", "name": "ops", "url": f"{url}/ops", "secret_env": SECRET_ENV},
            {
                "type": "retrain",
                "name": "trainer",
                "kind": "generic",
                "url": f"{trainer_url or url}/retrain",
            },
        ],
        "delivery": {"timeout_s": 2, "backoff_base_s": 0.05, "backoff_max_s": 0.2},
    }
    return stream_config(tmp_path, alerts, rules)


RULES = [
    {"kind": "feature_drift"},  # per drifted feature, fire after 2, resolve after 2
    {"kind": "drift_share", "threshold": 0.3, "retrain": True},
]


def verified(headers: Mapping[str, str], body: bytes) -> bool:
    """The receiver's check: our signature on every request, with a fresh timestamp."""
    try:
        verify_driftline_signature(SECRET, headers["x-driftline-signature"], body)
    except (SignatureError, KeyError):
        return False
    return True


@pytest.fixture
def receiver() -> Any:
    """The webhook receiver: it rejects (401) any request whose signature does not verify."""
    with Receiver(verify=verified) as running:
        yield running


@pytest.fixture
def trainer() -> Any:
    """The retraining job runner's endpoint (the generic template is authenticated by headers)."""
    with Receiver() as running:
        yield running


def test_the_rules_fire_once_per_incident_and_resolve_and_every_event_arrives_once(
    tmp_path, monkeypatch, receiver, trainer
):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = configured(tmp_path, receiver.url, RULES, trainer.url)
    log = tmp_path / "log.jsonl"
    stream_log(log)
    replayed = replay(config, log)
    assert [
        round((w.window_start - replayed.windows[0].window_start) / 60) for w in replayed.windows
    ] == list(range(WINDOWS))
    drifted = {
        round((w.window_start - replayed.windows[0].window_start) / 60): {
            f.name for f in w.drifted_features
        }
        for w in replayed.windows
    }
    # The last window's region passes the test by chance (Benjamini-Hochberg at 0.05 on this
    # seed) but is not material, so it is not drift: before materiality it was one noisy
    # window that only fire_after 2 kept from paging anyone.
    last = replayed.windows[-1].drift
    assert last is not None
    (region,) = [f for f in last.features if f.name == "region"]
    assert (region.detectable, region.material, region.drift) == (True, False, False)
    expected = {i: set(DRIFTED) if i in DRIFTED_WINDOWS else set() for i in range(WINDOWS)}
    assert drifted == expected

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    store = Store.connect(config.database_url())
    try:
        alert_store = AlertStore(store)
        rules = AlertRules(config, store, alert_store, metrics=metrics)
        done = rules.run_once()
        assert [a.committed for a in done] == [True]
        events = done[0].events
        kinds = Counter((e.type.value, e.rule, e.subject) for e in events)
        # Exactly one notification and one resolution per incident, one retrain request.
        assert kinds == Counter(
            {
                **{("drift.detected", "feature_drift", f): 1 for f in DRIFTED},
                **{("alert.resolved", "feature_drift", f): 1 for f in DRIFTED},
                ("drift.detected", "drift_share", ""): 1,
                ("retrain.requested", "drift_share", ""): 1,
                ("alert.resolved", "drift_share", ""): 1,
            }
        ), kinds
        first = {e.type.value: e for e in events if e.rule == "drift_share"}
        start = replayed.windows[0].window_start
        # Fired on the second drifted window (fire_after 2), resolved on the second clean one.
        assert first["drift.detected"].window_start == start + 4 * 60
        assert first["alert.resolved"].window_start == start + 8 * 60
        retrain = first["retrain.requested"].details
        assert {f["name"] for f in retrain["features"]} >= set(DRIFTED)
        assert len({e.id for e in events}) == len(events)
        assert (
            registry.get_sample_value(
                "driftline_alerts_total",
                {"model": "credit", "rule": "drift_share", "severity": "critical"},
            )
            == 1.0
        )
        # Nothing new on the next run: the cursor is past every window.
        assert rules.run_once()[0].events == ()
        incidents = alert_store.incidents(model="credit")
        assert {(i.rule, i.subject, i.status) for i in incidents} == {
            *{("feature_drift", f, "resolved") for f in DRIFTED},
            ("drift_share", "", "resolved"),
        }

        # Delivery: every event to its targets, each id accepted once, all signatures good.
        outbox = SqlOutbox(store)
        with deliverer(config, outbox, metrics, owner="test") as sending:
            wait_until(
                lambda: sending.run_once() is not None and outbox.counts().get("pending", 0) == 0,
                30,
                lambda: f"outbox not drained: {outbox.counts()}",
                interval=0.05,
            )
        ops = receiver.requests
        assert all(r.path.endswith("/ops") and 200 <= r.status < 300 for r in ops)
        assert Counter(r.event_id for r in ops) == Counter({e.id: 1 for e in events})
        assert [r.event_id for r in trainer.requests] == [first["retrain.requested"].id]
        assert outbox.counts().get("delivered") == len(events) + 1
        # The secret signs requests; it is never stored, listed or sent in a body.
        stored = AlertStore(store).events(model="credit", limit=1000)
        assert all(SECRET.encode() not in d.event.payload for d in stored)
        assert all(SECRET.encode() not in r.body for r in receiver.requests + trainer.requests)
        assert registry.get_sample_value(
            "driftline_webhook_deliveries_total", {"target": "ops", "outcome": "delivered"}
        ) == len(events)
    finally:
        store.close()


def test_two_processes_advancing_the_same_cursor_write_each_event_once(
    tmp_path, monkeypatch, receiver
):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = configured(tmp_path, receiver.url, RULES)
    log = tmp_path / "log.jsonl"
    stream_log(log)
    replay(config, log)
    stores = [Store.connect(config.database_url()) for _ in range(3)]
    try:
        workers = [AlertRules(config, s, AlertStore(s)) for s in stores]
        results: list[Any] = []
        barrier = threading.Barrier(len(workers))

        def work(rules: AlertRules) -> None:
            barrier.wait()
            results.extend(rules.run_once())

        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        committed = [r for r in results if r.committed and r.events]
        assert len(committed) == 1, results
        stored = AlertStore(stores[0]).events(model="credit", limit=1000)
        assert sorted(d.event.event_id for d in stored) == sorted(e.id for e in committed[0].events)
        # The losers computed the very same ids: a retry can never mint a second one.
        for lost in (r for r in results if not r.committed):
            assert {e.id for e in lost.events} <= {e.id for e in committed[0].events}
    finally:
        for store in stores:
            store.close()


# --- operator tools: CLI and HTTP API ---------------------------------------------------------


@pytest.fixture
def alerted(tmp_path, monkeypatch) -> tuple[ServiceConfig, Path, list[Any]]:
    """A replayed and alerted database (targets on a closed port: nothing is delivered)."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = configured(tmp_path, "http://127.0.0.1:9", RULES)
    log = tmp_path / "log.jsonl"
    stream_log(log)
    replay(config, log)
    store = Store.connect(config.database_url())
    try:
        (done,) = AlertRules(config, store, AlertStore(store)).run_once()
    finally:
        store.close()
    return config, tmp_path / "service.yaml", list(done.events)


def cli_json(capsys: Any, *argv: str) -> Any:
    assert main(list(argv)) == 0
    return orjson.loads(capsys.readouterr().out)


def test_the_cli_lists_incidents_and_events_and_backtests_the_same_history(alerted, capsys):
    _, path, events = alerted
    incidents = cli_json(capsys, "alerts", "list", "--config", str(path), "--format", "json")
    assert sorted((i["rule"], i["subject"], i["status"]) for i in incidents) == sorted(
        [("feature_drift", f, "resolved") for f in DRIFTED] + [("drift_share", "", "resolved")]
    )
    assert [i["retrain_requested"] for i in incidents if i["rule"] == "drift_share"] == [True]
    listed = cli_json(capsys, "alerts", "events", "--config", str(path), "--format", "json")
    assert sorted(e["id"] for e in listed) == sorted(e.id for e in events)
    assert all(t["state"] == "pending" for e in listed for t in e["targets"])
    # The backtest replays the same rules over the same stored windows: the same events.
    backtest = cli_json(
        capsys, "alerts", "backtest", "--config", str(path), "--model", "credit", "--format", "json"
    )
    assert Counter((e["type"], e["rule"], e["subject"]) for e in backtest["events"]) == Counter(
        (e.type.value, e.rule, e.subject) for e in events
    )
    share = next(r for r in backtest["rules"] if r["rule"] == "drift_share")
    assert (share["fired"], share["resolved"], share["retrain"]) == (1, 1, 1)
    # From window 5 (drifted) on: windows 5 and 6 breach, so the incident fires on window 6.
    late = cli_json(
        capsys,
        "alerts", "backtest", "--config", str(path), "--model", "credit",
        "--since", "2027-01-15T08:05:00Z", "--format", "json",
    )  # fmt: skip
    assert late["windows"] == WINDOWS - 5, late
    fired = [
        e for e in late["events"] if e["type"] == "drift.detected" and e["rule"] == "drift_share"
    ]
    assert [e["window_start"] for e in fired] == ["2027-01-15T08:06:00Z"]


def test_the_cli_redelivers_a_dead_event_and_refuses_an_unknown_one(alerted, capsys):
    config, path, events = alerted
    store = Store.connect(config.database_url())
    try:
        outbox = SqlOutbox(store)
        (claimed,) = outbox.claim("test", now=events[0].created_at + 1, lease_s=60, limit=1)
        attempt = DeliveryAttempt(
            event_id=claimed.event_id,
            target=claimed.target,
            attempt=1,
            started_at=0.0,
            finished_at=0.0,
            outcome="dead",
        )
        assert outbox.record_dead(claimed.event_id, claimed.target, "test", attempt)
        assert outbox.counts()["dead"] == 1
        assert main(["alerts", "redeliver", "--config", str(path), claimed.event_id]) == 0
        assert f"Queued {claimed.event_id} again for {claimed.target}" in capsys.readouterr().out
        assert outbox.counts()["dead"] == 0
        assert main(["alerts", "redeliver", "--config", str(path), "no-such-event"]) == 2
        assert "no alert event 'no-such-event'" in capsys.readouterr().err
    finally:
        store.close()


def test_exported_prometheus_rules_pass_promtool(alerted, tmp_path):
    _, path, _ = alerted
    promtool = shutil.which("promtool")
    if promtool is None:
        skip_or_fail("promtool (Debian's prometheus package) is not installed")
    out = tmp_path / "rules.yaml"
    assert main(["alerts", "export-rules", "--config", str(path), "--output", str(out)]) == 0
    text = out.read_text()
    assert "driftline_feature_drift_detected" in text
    assert "driftline_dataset_drift_share" in text
    checked = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_api_serves_incidents_and_events_and_redelivery_needs_the_token(alerted, monkeypatch):
    config, _, events = alerted
    monkeypatch.setenv("DRIFTLINE_TEST_TOKEN", "tok-123")
    secured = config.model_copy(
        update={"http": config.http.model_copy(update={"write_token_env": "DRIFTLINE_TEST_TOKEN"})}
    )
    store = Store.connect(config.database_url())
    registry = CollectorRegistry()
    client = TestClient(
        create_app(secured, store, registry, Metrics(registry), broker_check=lambda: None)
    )
    try:
        firing = client.get("/api/alerts", params={"state": "firing"})
        assert firing.status_code == 200
        assert firing.json() == []
        resolved = client.get("/api/alerts", params={"model": "credit", "state": "resolved"})
        assert len(resolved.json()) == len(DRIFTED) + 1
        listed = client.get("/api/events", params={"limit": 1000}).json()
        assert sorted(e["id"] for e in listed) == sorted(e.id for e in events)
        path = f"/api/events/{events[0].id}/redeliver"
        assert client.post(path).status_code == 401
        assert client.post(path, headers={"Authorization": "Bearer wrong"}).status_code == 403
        answer = client.post(path, headers={"Authorization": "Bearer tok-123"})
        assert answer.status_code == 200
        assert answer.json()["requeued"] == []  # pending, not dead: left as is
        unknown = client.post(
            "/api/events/nope/redeliver", headers={"Authorization": "Bearer tok-123"}
        )
        assert unknown.status_code == 404
        assert "tok-123" not in str(listed)
        assert SECRET not in str(listed)
        assert SECRET not in client.get("/api/alerts").text
    finally:
        client.close()
        store.close()


# --- order: windows evaluated out of order, and re-evaluated ---------------------------------


def drift_results(pattern: str) -> list[WindowResult]:
    """One result per character: ``d`` a window where f0 and f1 drifted, ``.`` a clean one."""
    rng = np.random.default_rng(3)
    names = ["f0", "f1", "f2", "f3"]
    reference = pd.DataFrame(rng.normal(size=(2000, 4)), columns=names)
    clean = pd.DataFrame(rng.normal(size=(400, 4)), columns=names)
    shifted = clean.copy()
    shifted[["f0", "f1"]] += 1.0
    reports = {
        ".": compare_frames(reference, clean, DriftSettings()),
        "d": compare_frames(reference, shifted, DriftSettings()),
    }
    assert {f.name for f in reports["d"].drifted} == {"f0", "f1"}
    assert not reports["."].drifted
    return [
        WindowResult(
            model="order",
            window_start=T0 + 60 * i,
            window_end=T0 + 60 * (i + 1),
            rows=400,
            status="ok",
            profile_version=1,
            drift=reports[c],
        )
        for i, c in enumerate(pattern)
    ]


def order_config(tmp_path: Path) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'order.db'}"},
            "models": [{"name": "order", "alerts": {"rules": [{"kind": "drift_share"}]}}],
        }
    )


def test_windows_evaluated_out_of_order_are_read_in_order_and_re_evaluations_rewrite_nothing(
    tmp_path,
):
    config = order_config(tmp_path)
    results = drift_results("..dd..")
    store = Store.connect(config.database_url())
    try:
        rules = AlertRules(config, store, AlertStore(store))
        # Window 2 is being evaluated (partials, no result) while 3 and 0, 1 are done.
        store.checkpoint(
            "g",
            [
                PartialRow(
                    model="order",
                    window_start=results[2].window_start,
                    window_end=results[2].window_end,
                    topic="t",
                    partition=0,
                    sketch=b"-",
                    rows=400,
                )
            ],
            [ProgressRow(topic="t", partition=0, next_offset=1)],
        )
        for index in (3, 0, 1):
            store.save_window_result(results[index])
        (first,) = rules.run_once()
        assert first.windows == (results[0].window_start, results[1].window_start)
        assert first.events == ()
        # Window 2's result arrives: 2 and 3 are read, in order, and the incident fires on 3.
        store.save_window_result(results[2])
        (second,) = rules.run_once()
        assert second.windows == (results[2].window_start, results[3].window_start)
        assert [(e.type.value, e.window_start) for e in second.events] == [
            ("drift.detected", results[3].window_start)
        ]
        # A re-evaluation of window 2 (late labels, say) that now reads clean changes nothing:
        # the rules do not read a window twice and a notified incident is not retracted.
        store.save_window_result(replace(results[2], drift=results[0].drift))
        assert rules.run_once()[0].events == ()
        # The next windows carry on: two clean windows resolve it.
        for index in (4, 5):
            store.save_window_result(results[index])
        (third,) = rules.run_once()
        assert [(e.type.value, e.window_start) for e in third.events] == [
            ("alert.resolved", results[5].window_start)
        ]
    finally:
        store.close()


def test_a_new_model_version_resolves_the_old_incidents_and_answers_the_retrain_request(
    tmp_path,
):
    config = ServiceConfig.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'loop.db'}"},
            "models": [
                {
                    "name": "order",
                    "alerts": {
                        "rules": [
                            {"kind": "drift_share", "retrain": True},
                            {"kind": "feature_drift", "min_features": 2, "retrain": True},
                        ]
                    },
                }
            ],
        }
    )
    # Drifted throughout; windows 0-2 on model version 7's reference, 3-6 on version 8's.
    results = [
        replace(r, profile_version=1 if i < 3 else 2) for i, r in enumerate(drift_results("d" * 7))
    ]
    store = Store.connect(config.database_url())
    try:
        assert store.save_profile("order", b"{}", model_version="7") == 1
        assert store.save_profile("order", b"{}", model_version="8") == 2
        for result in results:
            store.save_window_result(result)
        (done,) = AlertRules(config, store, AlertStore(store)).run_once()
        start = results[0].window_start
        seen = [
            (round((e.window_start - start) / 60), e.type.value, e.rule, e.details.get("reason"))
            for e in done.events
        ]
        assert seen == [
            # Version 7: both rules fire on the second drifted window; one retraining request.
            (1, "drift.detected", "drift_share", None),
            (1, "retrain.requested", "drift_share", None),
            (1, "drift.detected", "feature_drift.min_2", None),
            # Version 8 takes over at window 3: the old incidents end, the request is answered.
            (2, "alert.resolved", "drift_share", "model_replaced"),
            (2, "alert.resolved", "feature_drift.min_2", "model_replaced"),
            # Version 8 drifts too: new incidents, and a new request (the old one was answered).
            (4, "drift.detected", "drift_share", None),
            (4, "retrain.requested", "drift_share", None),
            (4, "drift.detected", "feature_drift.min_2", None),
        ]
        resolved = {
            (i.rule, i.reason)
            for i in AlertStore(store).incidents(model="order", status="resolved")
        }
        assert resolved == {
            ("drift_share", "model_replaced"),
            ("feature_drift.min_2", "model_replaced"),
        }
    finally:
        store.close()


def fleet_config(tmp_path: Path, models: int) -> ServiceConfig:
    """``models`` models with the default rules on one SQLite database (no references)."""
    body = {
        "database": {"url": f"sqlite:///{tmp_path / f'fleet{models}.db'}"},
        "models": [
            {"name": f"m{k:03d}", "window": {"size": "1m"}, "alerts": {"rules": RULES}}
            for k in range(models)
        ],
    }
    path = tmp_path / f"fleet{models}.yaml"
    path.write_text(yaml.safe_dump(body))
    return ServiceConfig.load(path)


def round_queries(config: ServiceConfig, evaluated: bool) -> tuple[int, list[Any]]:
    """Queries of one rule round over the fleet; ``evaluated``: m000 has a new window first."""
    store = Store.connect(config.database_url())
    try:
        if evaluated:
            summary = replayed_summary("m000", T0)
            store.finish_window("m000", T0, summary, [])
        statements: list[str] = []
        sqlalchemy.event.listen(
            store.engine,
            "before_cursor_execute",
            lambda *a: a[2] == "BEGIN" or statements.append(a[2]),
        )
        done = AlertRules(config, store, AlertStore(store)).run_once()
    finally:
        store.close()
    return len(statements), done


def replayed_summary(model: str, start: float) -> WindowSummaryRow:
    """An evaluated window of ``model`` without drift."""
    return WindowSummaryRow(
        model=model, window_start=start, window_end=start + 60, rows=100, status="ok",
        dataset_drift=False, drift_share=0.0,
    )  # fmt: skip


def test_a_rule_round_over_a_fleet_costs_the_same_queries_for_5_or_50_models(tmp_path):
    # The fleet reads: every cursor, every model's newest window (and the open windows of the
    # models that have new ones): not one cursor, result and open-windows query per model.
    idle, done = round_queries(fleet_config(tmp_path, 50), evaluated=False)
    assert idle == 2
    assert [(a.model, a.windows, a.events, a.committed) for a in done] == [
        (f"m{k:03d}", (), (), True) for k in range(50)
    ]
    small, _ = round_queries(fleet_config(tmp_path, 5), evaluated=True)
    large, done = round_queries(fleet_config(tmp_path, 50), evaluated=True)
    assert small == large > idle
    assert done[0].windows == (T0,)
    assert done[0].committed
    assert all(a.windows == () for a in done[1:])


def test_a_fleet_round_reads_the_watermarks_once_for_every_model_that_waits_for_labels(tmp_path):
    body = {
        "database": {"url": f"sqlite:///{tmp_path / 'labels.db'}"},
        "models": [
            {
                "name": f"m{k}",
                "window": {"size": "1m"},
                "labels": {"enabled": True, "max_delay": "60s"},
                "alerts": {"rules": [{"kind": "quality", "metric": "accuracy", "threshold": 0.5}]},
            }
            for k in range(3)
        ],
    }
    path = tmp_path / "labels.yaml"
    path.write_text(yaml.safe_dump(body))
    config = ServiceConfig.load(path)
    calls: list[str] = []

    def watermarks() -> dict[str, float]:
        calls.append("read")
        return {"m0": T0 + 120, "m1": T0 + 60}  # m2: no watermark yet

    store = Store.connect(config.database_url())
    try:
        for k in range(3):
            store.finish_window(f"m{k}", T0, replayed_summary(f"m{k}", T0), [])
        done = AlertRules(config, store, AlertStore(store), watermarks=watermarks).run_once()
    finally:
        store.close()
    assert calls == ["read"]
    # m0's window ended 60 s (max_delay) before its watermark: final; m1's did not; m2 has none.
    assert [(a.model, a.windows) for a in done] == [("m0", (T0,)), ("m1", ()), ("m2", ())]

"""The alerting layer in real ``driftline run`` processes on Apache Kafka.

* The webhook receiver is down while the drift happens; the monitor is
  SIGKILLed with every event in the outbox and none delivered; after a
  restart with the receiver up, every event arrives, each id once, and no
  event has a new id.
* Two monitor processes on PostgreSQL: each incident's events are created
  once and delivered once (leases), whichever process evaluates a window.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.signing import SignatureError, verify_driftline_signature
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox
from tests.alerts.receiver import Receiver
from tests.servers import unique_name
from tests.service.harness import (
    MonitorPool,
    Names,
    create_topics,
    opened,
    produce,
    store_reference,
    wait_until,
    write_config,
)
from tests.service.streams import DRIFTED, Stream

pytestmark = pytest.mark.integration

SECRET = "kill-test-secret"
SECRET_ENV = "DRIFTLINE_TEST_WEBHOOK_SECRET"
WINDOWS = 12
DRIFTED_WINDOWS = range(3, 7)
#: One incident per drifted feature and one for the drift share: fired, retrain, resolved.
EXPECTED = Counter(
    {
        **{("drift.detected", "feature_drift", f): 1 for f in DRIFTED},
        **{("alert.resolved", "feature_drift", f): 1 for f in DRIFTED},
        ("drift.detected", "drift_share", ""): 1,
        ("retrain.requested", "drift_share", ""): 1,
        ("alert.resolved", "drift_share", ""): 1,
    }
)


def records(model: str) -> list[tuple[bytes, bytes]]:
    """Windows 0-2 clean, 3-6 drifted, 7-11 clean (the last one only moves the watermark)."""
    drifting = Stream(model=model, windows=WINDOWS, per_window=300, drift_from=3)
    clean = Stream(model=model, windows=WINDOWS, per_window=300, drift_from=10_000, seed=2)
    out = []
    for index in range(WINDOWS):
        source = drifting if index < 7 else clean
        out += source.records(index)
    return out


def alerting_config(path: Path, receiver_url: str, **settings: Any) -> Path:
    """Add the alert rules and the signed webhook target to a harness config."""
    data = yaml.safe_load(path.read_text())
    data["models"][0]["alerts"] = {
        "rules": [
            {"kind": "feature_drift"},
            {"kind": "drift_share", "threshold": 0.3, "retrain": True},
        ]
    }
    data["alerts"] = {
        "interval_s": 0.5,
        "targets": [
            {
                "type": "webhook",
                "name": "ops",
                "url": f"{receiver_url}/ops",
                "secret_env": SECRET_ENV,
            }
        ],
        "delivery": {"timeout_s": 2, "backoff_base_s": 0.1, "backoff_max_s": 0.5, "lease_s": 30},
        **settings,
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def verified(headers: Mapping[str, str], body: bytes) -> bool:
    try:
        verify_driftline_signature(SECRET, headers["x-driftline-signature"], body)
    except (SignatureError, KeyError):
        return False
    return True


def stored_events(store: Store, model: str) -> Counter[tuple[str, str, str]]:
    return Counter(
        (d.event.type, d.event.rule, d.event.subject)
        for d in AlertStore(store).events(model=model, limit=1000)
    )


def test_events_survive_a_receiver_outage_and_a_sigkill_and_arrive_once(
    kafka_broker, monitors: MonitorPool, tmp_path
):
    stream_model = unique_name("credit")
    names = Names.fresh(stream_model)
    create_topics(kafka_broker.bootstrap, [names.predictions, names.labels])
    receiver = Receiver(verify=verified).start()
    url = receiver.url
    receiver.stop()  # down: connections refused until it starts again on the same port
    database = f"sqlite:///{tmp_path / 'driftline.db'}"
    config = write_config(
        tmp_path / "monitor.yaml",
        bootstrap=kafka_broker.bootstrap,
        names=names,
        group=unique_name("alerts"),
        database_url=database,
        consumer={"idle_timeout_s": 2},
        model={"drift": {"correction": "bh"}},
    )
    alerting_config(config, url)
    store_reference(
        database, config, Stream(model=stream_model, windows=WINDOWS, per_window=300, drift_from=3)
    )
    env = {SECRET_ENV: SECRET}
    first = monitors.new(config, "monitor", env=env).start()
    try:
        produce(kafka_broker.bootstrap, names.predictions, records(stream_model))
        with opened(database) as store:
            wait_until(
                lambda: stored_events(store, stream_model) == EXPECTED,
                90,
                lambda: f"events: {stored_events(store, stream_model)}\n{monitors.logs()}",
                interval=0.3,
            )
            ids = {d.event.event_id for d in AlertStore(store).events(model=stream_model)}
            assert SqlOutbox(store).counts().get("delivered", 0) == 0
            first.kill()  # SIGKILL: every event in the outbox, none delivered
            receiver.start()
            second = monitors.new(config, "monitor-restarted", env=env).start()
            wait_until(
                lambda: SqlOutbox(store).counts().get("pending", 1) == 0,
                60,
                lambda: f"outbox: {SqlOutbox(store).counts()}\n{monitors.logs()}",
                interval=0.3,
            )
            after = {d.event.event_id for d in AlertStore(store).events(model=stream_model)}
        assert after == ids  # nothing re-minted, nothing new
        assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
        assert all(r.status < 300 for r in receiver.requests)
        assert second.stop() == 0, monitors.logs()
        assert SECRET not in first.log() + second.log()
    finally:
        receiver.stop()


def test_two_processes_on_postgresql_create_and_deliver_each_event_once(
    kafka_broker, monitors: MonitorPool, postgres_url, tmp_path
):
    stream_model = unique_name("credit")
    names = Names.fresh(stream_model)
    create_topics(kafka_broker.bootstrap, [names.predictions, names.labels])
    with Receiver(verify=verified) as receiver:
        config = write_config(
            tmp_path / "monitor.yaml",
            bootstrap=kafka_broker.bootstrap,
            names=names,
            group=unique_name("alerts"),
            database_url=postgres_url,
            consumer={"idle_timeout_s": 2},
            model={"drift": {"correction": "bh"}},
        )
        alerting_config(config, receiver.url)
        store_reference(
            postgres_url,
            config,
            Stream(model=stream_model, windows=WINDOWS, per_window=300, drift_from=3),
        )
        env = {SECRET_ENV: SECRET}
        pool = [monitors.new(config, f"monitor-{i}", env=env).start() for i in range(2)]
        wait_until(
            lambda: all(f"assigned {names.predictions}/" in m.log() for m in pool),
            60,
            lambda: f"no assignment\n{monitors.logs()}",
        )
        produce(kafka_broker.bootstrap, names.predictions, records(stream_model))
        with opened(postgres_url) as store:
            wait_until(
                lambda: (
                    stored_events(store, stream_model) == EXPECTED
                    and SqlOutbox(store).counts().get("pending", 1) == 0
                ),
                90,
                lambda: (
                    f"{stored_events(store, stream_model)} {SqlOutbox(store).counts()}\n"
                    f"{monitors.logs()}"
                ),
                interval=0.3,
            )
            ids = {d.event.event_id for d in AlertStore(store).events(model=stream_model)}
        assert sum(EXPECTED.values()) == len(ids)
        assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
        for monitor in pool:
            assert monitor.stop() == 0, monitors.logs()

"""The service end to end on a real Kafka-protocol broker (Tansu) and SQLite.

A seeded stream with drift injected from a known window on flows through the
consumer group into windows; the stored results must show no drift before
that window, drift on exactly the injected features from it on, and equal
what ``driftline check`` computes on the same rows.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from detectors.drift import compare_frames
from monitor.analyses.reference import build_profile
from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.service.run import load_runtimes
from monitor.store import Store
from monitor.streaming.evaluate import Evaluator
from monitor.streaming.ingest import REASON_HEADER, Ingestor
from tests.servers import unique_name
from tests.service.streams import DRIFTED, Stream

pytestmark = pytest.mark.integration

CONFIG = """
broker:
  bootstrap_servers: ["{bootstrap}"]
topics:
  predictions: {predictions}
  labels: {labels}
  dead_letter: {dead_letter}
consumer:
  group_id: {group}
  session_timeout_ms: 2000
  heartbeat_interval_ms: 500
  checkpoint_interval_s: 0.2s
  idle_timeout_s: 2s
database:
  url: sqlite:///{db}
models:
  - name: {model}
    window: {{size: 1m, allowed_lateness: 0s, min_records: 50}}
    drift: {{correction: bh}}
"""


def make_config(tmp_path: Path, bootstrap: str) -> ServiceConfig:
    names = {
        "predictions": unique_name("predictions"),
        "labels": unique_name("labels"),
        "dead_letter": unique_name("dead"),
        "group": unique_name("group"),
        "model": "credit",
    }
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [NewTopic(names[t], num_partitions=4, replication_factor=1) for t in ("predictions",)]
    )
    admin.close()
    path = tmp_path / "service.yaml"
    path.write_text(
        textwrap.dedent(CONFIG).format(bootstrap=bootstrap, db=tmp_path / "d.db", **names)
    )
    return ServiceConfig.load(path)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for key, value in records:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def consume_all(ingestor: Ingestor, expected_offsets: int, rounds: int = 400) -> None:
    """Poll until the partitions' stored offsets add up to ``expected_offsets``."""
    for _ in range(rounds):
        ingestor.poll_once(timeout_ms=200)
        done = sum(s.next_offset or 0 for s in ingestor.states.values())
        if done >= expected_offsets:
            ingestor.checkpoint()
            return
    raise AssertionError(f"consumed {done} of {expected_offsets} records")


BAD_RECORDS = [
    (b"k1", b"{not json"),
    (b"k2", b'{"model": "credit", "features": [], "prediction": 1}'),
    (b"k3", b'{"model": "nope", "features": {}, "prediction": 1, "timestamp": 1}'),
    (b"k4", b'{"model": "credit", "features": {}}'),
]


@pytest.fixture(params=["apache-kafka", "tansu"])
def any_broker(request):
    """Apache Kafka, the integration broker, then Tansu: ``make demo``'s embedded broker."""
    return request.getfixturevalue(
        "kafka_broker" if request.param == "apache-kafka" else "tansu_broker"
    )


def test_drift_from_the_injected_window_on_and_equal_to_check(any_broker, tmp_path):
    kafka_broker = any_broker
    config = make_config(tmp_path, kafka_broker.bootstrap)
    stream = Stream(model="credit", windows=7, per_window=400, drift_from=3)
    store = Store.connect(config.database_url())
    model = config.model("credit")
    store.save_profile("credit", build_profile(model, stream.reference()).to_bytes())
    runtimes = load_runtimes(config, store)
    records = [r for i in range(stream.windows) for r in stream.records(i)]
    produce(kafka_broker.bootstrap, config.topics.predictions, records + BAD_RECORDS)

    metrics = Metrics(CollectorRegistry())
    ingestor = Ingestor(config, store, runtimes, metrics)
    try:
        consume_all(ingestor, len(records) + len(BAD_RECORDS))
    finally:
        ingestor.close()
    evaluator = Evaluator(config, store, runtimes, metrics, owner="test")
    evaluated = {o.window_start: o for o in evaluator.run_once()}

    # The last window only moves the watermark; every earlier one is evaluated once.
    assert set(evaluated) >= {stream.window_start(i) for i in range(stream.windows - 1)}
    assert evaluator.run_once() == []
    reference = stream.reference()
    for index in range(stream.windows - 1):
        outcome = evaluated[stream.window_start(index)]
        assert outcome.rows == stream.per_window
        report = outcome.drift
        assert report is not None
        drifted = {f.name for f in report.features if f.drift}
        assert drifted == (set(DRIFTED) if index >= stream.drift_from else set()), index
        # The same rows through `check`'s path give the same numbers.
        rows = stream.window_rows(index)
        expected = compare_frames(
            reference,
            rows[reference.columns],
            config.model("credit").drift.settings(),
            prediction="prediction",
        )
        stored = {r.feature: r for r in store.feature_results("credit", outcome.window_start)}
        for feature in (*expected.features, expected.prediction):
            assert feature is not None
            assert stored[feature.name].statistic == pytest.approx(feature.statistic, rel=1e-12)
            assert stored[feature.name].drift == feature.drift

    registry = metrics.registry
    assert registry.get_sample_value("driftline_records_total", {"model": "credit"}) == len(records)
    for reason in ("malformed_json", "wrong_type", "missing_field"):
        assert (
            registry.get_sample_value(
                "driftline_records_invalid_total",
                {"model": "credit" if reason != "malformed_json" else "unknown", "reason": reason},
            )
            == 1
        ), reason
    assert (
        registry.get_sample_value(
            "driftline_records_invalid_total", {"model": "unknown", "reason": "unknown_model"}
        )
        == 1
    )

    dead = KafkaConsumer(
        config.topics.dead_letter,
        bootstrap_servers=kafka_broker.bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    letters = {m.value: dict(m.headers)[REASON_HEADER].decode() for m in dead}
    dead.close()
    assert letters == {
        b"{not json": "malformed_json",
        BAD_RECORDS[1][1]: "wrong_type",
        BAD_RECORDS[2][1]: "unknown_model",
        BAD_RECORDS[3][1]: "missing_field",
    }

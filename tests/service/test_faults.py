"""Faults: the broker restarts, the database goes away -- the monitor recovers, loses nothing.

(a) A durable broker (Tansu on its S3 storage engine against a local
``moto_server``, see DESIGN.md) is SIGKILLed mid-stream and restarted on the
same port; the rest of the stream is produced after the restart. The running
``driftline run`` must reconnect, rejoin and store exactly the results of an
uninterrupted run.

(b) The PostgreSQL database becomes unreachable mid-stream (the monitor
reaches it through a TCP proxy that the test stops: connections reset, new
ones refused) while records keep arriving. The monitor must stay up, stop
consuming (no Kafka offset committed past what is stored, nothing stored
during the outage), and when the database returns resume and store exactly
the results of an uninterrupted run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from tests import servers
from tests.servers import unique_name
from tests.service.harness import (
    PARTITIONS,
    MonitorPool,
    Names,
    PacedProducer,
    TcpProxy,
    assert_same_results,
    create_topics,
    opened,
    reference_results,
    snapshot,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration


def chunks_of(stream: Stream, per_window: int = 2) -> list[list[tuple[bytes, bytes]]]:
    records = [r for i in range(stream.windows) for r in stream.records(i)]
    size = stream.per_window // per_window
    return [records[i : i + size] for i in range(0, len(records), size)]


def finished(url: str, group: str, topic: str, stream: Stream) -> bool:
    """Every record checkpointed and every window but the last evaluated."""
    with opened(url) as store:
        consumed = sum(stored_offsets(store, group, topic).values())
        starts = [w.window_start for w in summaries(store, stream.model)]
    expected = [stream.window_start(i) for i in range(stream.windows - 1)]
    return consumed == stream.windows * stream.per_window and starts == expected


# --- (a) broker restart ---


class DurableBroker:
    """A Tansu broker storing in S3 (a local moto_server): its data survives a restart."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.brokers = [self._start(None)]

    @property
    def current(self) -> servers.Broker:
        return self.brokers[-1]

    def _start(self, port: int | None) -> servers.Broker:
        return servers.start_broker(
            port=port, storage_engine="s3://tansu/", env=self.env, log_dir=self.log_dir
        )

    def crash_and_restart(self, down_s: float) -> None:
        """SIGKILL the broker, wait ``down_s`` seconds, start it again on the same port."""
        old = self.current
        old.kill()
        time.sleep(down_s)
        self.brokers.append(self._start(old.port))

    def stop(self) -> None:
        for broker in self.brokers:
            broker.stop()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[DurableBroker]:
    """A :class:`DurableBroker`; skips (fails under CI=true) without moto_server and boto3."""
    moto_server = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    try:
        import boto3
    except ImportError:
        boto3 = None
    if moto_server is None or boto3 is None:
        servers.skip_or_fail(
            'the durable broker needs moto_server and boto3: `.venv/bin/pip install "moto[server]"`'
        )
    port = servers.free_port()
    log = (tmp_path / "moto.log").open("wb")
    moto = subprocess.Popen(
        [moto_server, "-H", servers.LOCALHOST, "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    durable = None
    try:
        servers.wait_for_port(servers.LOCALHOST, port, timeout=30, process=moto)
        endpoint = f"http://{servers.LOCALHOST}:{port}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="x",
            aws_secret_access_key="x",
            region_name="us-east-1",
        ).create_bucket(Bucket="tansu")
        env = {
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "x",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
        }
        try:
            durable = DurableBroker(env, tmp_path)
        except servers.BrokerUnavailable as error:
            servers.skip_or_fail(str(error))
        yield durable
    finally:
        if durable is not None:
            durable.stop()
        moto.kill()
        moto.wait(10)
        log.close()


def test_broker_restart_mid_stream_loses_nothing(
    durable_broker: DurableBroker, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = durable_broker.current.bootstrap
    stream = Stream(model="credit", windows=10, per_window=200, drift_from=4)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    group = unique_name("restart")
    config = write_config(
        tmp_path / "restart.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=url,
        # kafka-python's idempotent producer fails for good after a broker restart.
        client_options={"enable_idempotence": False},
    )
    store_reference(url, config, stream)
    chunks = chunks_of(stream)
    half = len(chunks) // 2
    monitor = monitors.new(config, "restart").start()
    PacedProducer(bootstrap, names.predictions, chunks[:half], 0.2).start().join(60)
    with opened(url) as store:
        wait_until(
            lambda: len(summaries(store, stream.model)) >= 2,
            60,
            lambda: f"nothing evaluated before the restart\n{monitors.logs()}",
            interval=0.2,
        )
        before = sum(stored_offsets(store, group, names.predictions).values())
    assert before < stream.windows * stream.per_window

    durable_broker.crash_and_restart(down_s=1.5)
    assert monitor.alive, monitors.logs()
    PacedProducer(bootstrap, names.predictions, chunks[half:], 0.2).start().join(60)
    wait_until(
        lambda: finished(url, group, names.predictions, stream),
        60,
        lambda: f"the monitor did not recover from the restart\n{monitors.logs()}",
        interval=0.3,
    )
    assert monitor.alive, monitors.logs()
    assert monitor.stop() == 0, monitors.logs()
    with opened(url) as store:
        results = snapshot(store, stream.model)
    assert [w["rows"] for w in results.values()] == [stream.per_window] * (stream.windows - 1)
    expected = reference_results(tmp_path, bootstrap=bootstrap, names=names, stream=stream)
    assert_same_results(results, expected)


# --- (b) database outage ---


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The offsets ``group`` committed to Kafka (read without joining the group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        consumer.close(autocommit=False)


def test_database_outage_pauses_consumption_and_loses_nothing(
    kafka_broker, postgres_url: str, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model=unique_name("credit"), windows=10, per_window=200, drift_from=4)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or servers.LOCALHOST, target.port or 5432).start()
    try:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        group = unique_name("outage")
        config = write_config(
            tmp_path / "outage.yaml",
            bootstrap=bootstrap,
            names=names,
            group=group,
            database_url=proxied,
        )
        store_reference(postgres_url, config, stream)
        chunks = chunks_of(stream)
        total = stream.windows * stream.per_window
        monitor = monitors.new(config, "outage").start()
        outage: dict[str, object] = {}

        def cut_database(index: int) -> None:
            if index == 6:  # the stream goes on during the outage
                proxy.stop()
                outage["at"] = time.monotonic()

        with opened(postgres_url) as store:  # direct, not through the proxy

            def consumed() -> dict[int, int]:
                return stored_offsets(store, group, names.predictions)

            wait_until(
                lambda: f"assigned {names.predictions}/" in monitor.log(),
                60,
                lambda: f"the monitor did not start\n{monitors.logs()}",
            )
            paced = PacedProducer(
                bootstrap, names.predictions, chunks, 0.25, before_chunk=cut_database
            ).start()
            try:
                wait_until(lambda: "at" in outage, 30, "the outage did not start")
                time.sleep(0.5)  # a checkpoint in flight at the cut has failed by now
                during = consumed()
                assert sum(during.values()) < total
                # Eight seconds without the database while records keep arriving.
                for _ in range(16):
                    time.sleep(0.5)
                    assert monitor.alive, f"the monitor died in the outage\n{monitors.logs()}"
                    # Nothing stored, and Kafka's committed offsets never pass the stored ones.
                    assert consumed() == during
                    committed = committed_offsets(bootstrap, group, names.predictions)
                    assert all((committed[p] or 0) <= during.get(p, 0) for p in committed), (
                        committed,
                        during,
                    )
                assert "consumption paused" in monitor.log(), monitors.logs()
            finally:
                proxy.start()  # the database is back
                paced.join(60)
            wait_until(
                lambda: finished(postgres_url, group, names.predictions, stream),
                60,
                lambda: f"the monitor did not recover from the outage\n{monitors.logs()}",
                interval=0.3,
            )
            assert "consumption resumed" in monitor.log()
            assert monitor.alive, monitors.logs()
            assert monitor.stop() == 0, monitors.logs()
            results = snapshot(store, stream.model)
    finally:
        proxy.stop()
    assert [w["rows"] for w in results.values()] == [stream.per_window] * (stream.windows - 1)
    expected = reference_results(tmp_path, bootstrap=bootstrap, names=names, stream=stream)
    assert_same_results(results, expected)

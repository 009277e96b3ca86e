"""Shared fixtures: real servers for integration tests.

- ``kafka_broker``: Apache Kafka (:mod:`tests.apache_kafka`), one per test session
  (per xdist worker), or the existing one named by ``DRIFTLINE_TEST_KAFKA_BOOTSTRAP``.
  Tests share it, so they use their own topic and group names
  (:func:`tests.servers.unique_name`); a test that kills, freezes or reconfigures a
  broker asks ``kafka_factory`` for one of its own instead.
- ``kafka_factory``: starts Apache Kafka brokers of the test's own (with extra
  ``server.properties``), stopped after the test.
- ``tansu_broker``: Tansu, the embedded broker of ``make demo`` (smoke tests only).
- ``postgres_url``: the SQLAlchemy URL of a fresh database per test session, on a
  private PostgreSQL cluster (:mod:`tests.postgres`) or ``DRIFTLINE_TEST_POSTGRES_URL``.

Each skips when its server cannot be had, and fails instead under ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests import apache_kafka, postgres, servers
from tests.apache_kafka import ExternalKafka, KafkaFactory, KafkaServer


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaServer | ExternalKafka]:
    """A running Apache Kafka; ``.bootstrap`` is its ``"127.0.0.1:PORT"``."""
    external = os.environ.get(apache_kafka.KAFKA_BOOTSTRAP_ENV, "").strip()
    if external:
        yield ExternalKafka(external)
        return
    try:
        server = apache_kafka.start_kafka()
    except apache_kafka.KafkaUnavailable as error:
        servers.skip_or_fail(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kafka_factory() -> Iterator[KafkaFactory]:
    """``factory(properties={...})`` starts an Apache Kafka of the test's own; all stop after."""
    started: list[KafkaServer] = []

    def factory(**options: object) -> KafkaServer:
        try:
            server = apache_kafka.start_kafka(**options)  # type: ignore[arg-type]
        except apache_kafka.KafkaUnavailable as error:
            servers.skip_or_fail(str(error))
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Broker]:
    """Tansu, the demo's embedded Kafka-protocol broker; ``.bootstrap`` is its address."""
    try:
        broker = servers.start_broker(log_dir=tmp_path_factory.mktemp("tansu"))
    except servers.BrokerUnavailable as error:
        servers.skip_or_fail(str(error))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """libpq URL of a role that may create databases: a private cluster, or the env's server."""
    given = os.environ.get(postgres.POSTGRES_ADMIN_URL_ENV, "").strip()
    if given:
        yield given
        return
    try:
        cluster = postgres.start_cluster()
    except postgres.PostgresUnavailable as error:
        servers.skip_or_fail(str(error))
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """``postgresql+psycopg://...`` of a database created for this session and dropped after."""
    with postgres.postgres_database(postgres_admin_url) as url:
        yield url

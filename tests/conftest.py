"""Shared fixtures: real servers for integration tests (see tests/servers.py).

- ``kafka_broker``: one Tansu broker per test session (per xdist worker).
  Tests share it, so they use their own topic and group names
  (:func:`tests.servers.unique_name`); a test that freezes it uses
  ``with kafka_broker.frozen():`` so that it is always resumed.
- ``postgres_url``: the SQLAlchemy URL of a fresh database per test session.

Both skip when their server is unavailable, and fail instead under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[servers.Broker]:
    """A running Kafka-protocol broker; ``.bootstrap`` is its ``"127.0.0.1:PORT"``."""
    try:
        broker = servers.start_broker(log_dir=tmp_path_factory.mktemp("tansu"))
    except servers.BrokerUnavailable as error:
        servers.skip_or_fail(str(error))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://...`` of a database created for this session and dropped after."""
    with servers.postgres_database() as url:
        yield url

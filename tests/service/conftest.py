"""Fixtures of the service integration tests.

The Kafka-path suites below run once per consumer backend (``consumer.backend``:
kafka-python and confluent): the autouse ``kafka_backend`` fixture is parametrised
for them and sets :data:`tests.service.harness.BACKEND_ENV`, which every config
written by :func:`tests.service.harness.write_config` follows. The other service
tests run on the default backend only (their Kafka use is the same code path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.harness import BACKEND_ENV, MonitorPool

#: Consumer backends of the Kafka-path suites.
BACKENDS = ("kafka-python", "confluent")
#: The test modules run on every backend: exactly-once, faults, rebalances and scale-out,
#: dead letters, transactions and lag, idle partitions, the in-process ingest, logins.
#: (test_group_assignment checks driftline's kafka-python assignors: kafka-python only.)
BOTH_BACKENDS = frozenset(
    {
        "test_exactly_once",
        "test_faults",
        "test_scale_out",
        "test_poison_records",
        "test_bad_input",
        "test_transactions_and_lag",
        "test_idle_partitions",
        "test_ingest_e2e",
        "test_kafka_auth",
    }
)


#: Fixtures of a test that talks to a real broker (the others use stand-in consumers).
BROKER_FIXTURES = frozenset(
    {"kafka_broker", "kafka_factory", "tansu_broker", "any_broker", "monitors"}
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the broker tests of the modules in :data:`BOTH_BACKENDS` once per backend."""
    module = metafunc.module.__name__.rpartition(".")[2]
    names = set(metafunc.fixturenames)
    if module in BOTH_BACKENDS and "kafka_backend" in names and names & BROKER_FIXTURES:
        metafunc.parametrize("kafka_backend", BACKENDS, indirect=True)


@pytest.fixture(autouse=True)
def kafka_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The consumer backend of this test's configs.

    The parameter in the modules of :data:`BOTH_BACKENDS`; elsewhere
    :data:`~tests.service.harness.BACKEND_ENV` if set (to run them on another
    backend by hand), else kafka-python.
    """
    backend: str = getattr(request, "param", None) or os.environ.get(BACKEND_ENV) or BACKENDS[0]
    monkeypatch.setenv(BACKEND_ENV, backend)
    return backend


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[MonitorPool]:
    """Starts ``driftline run`` subprocesses; every one of them is SIGKILLed after the test."""
    pool = MonitorPool(tmp_path)
    try:
        yield pool
    finally:
        pool.kill_all()

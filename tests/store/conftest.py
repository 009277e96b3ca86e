"""Fixtures of the store suite: every test runs once on SQLite and once on PostgreSQL.

Each test gets an empty database of its own: a SQLite file in ``tmp_path``,
or a fresh schema (selected through ``search_path``) in the session's
PostgreSQL database, so tests on two xdist workers or in one session never
see each other's rows. The PostgreSQL variants are integration tests: they
skip when the server is unreachable, and fail under ``CI=true``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.schema import CreateSchema

from monitor.store import Store
from tests import servers
from tests.store._clock import FakeClock


@pytest.fixture(scope="session")
def postgres_admin(postgres_url: str) -> Iterator[Engine]:
    """An engine on the session's PostgreSQL database, for creating per-test schemas."""
    engine = sqlalchemy.create_engine(postgres_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the database backend this run of the test uses."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> URL:
    """The URL of an empty database (SQLite file, or a fresh PostgreSQL schema)."""
    if backend == "sqlite":
        return make_url(f"sqlite:///{tmp_path / 'driftline.db'}")
    admin: Engine = request.getfixturevalue("postgres_admin")
    schema = servers.unique_name("store")
    with admin.begin() as connection:
        connection.execute(CreateSchema(schema))
    return admin.url.update_query_dict({"options": f"-csearch_path={schema}"})


@pytest.fixture
def clock() -> FakeClock:
    """The clock the ``store`` fixture stamps rows with."""
    return FakeClock()


@pytest.fixture
def store(database_url: URL, clock: FakeClock) -> Iterator[Store]:
    """A migrated, empty Store on the test's database, using ``clock``."""
    opened = Store.connect(database_url, clock=clock)
    yield opened
    opened.close()

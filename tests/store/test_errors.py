"""Errors: bad URLs and unreachable databases raise StoreError without the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.store import Store, StoreError, create_engine, mask_url, migrate
from tests import servers

SECRET = "s3cr3t-pw"


def closed_port_url() -> str:
    return f"postgresql+psycopg://monitor:{SECRET}@127.0.0.1:{servers.free_port()}/driftline"


def test_ping_succeeds_on_a_working_database(store: Store) -> None:
    store.ping()


def test_ping_on_an_unreachable_server_raises_without_the_password() -> None:
    store = Store(create_engine(closed_port_url()))

    with pytest.raises(StoreError, match="unreachable") as caught:
        store.ping()

    assert SECRET not in str(caught.value)
    assert "monitor:***@127.0.0.1" in str(caught.value)


def test_ping_on_an_sqlite_file_that_cannot_be_opened_raises(tmp_path: Path) -> None:
    missing = Store(create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}"))

    with pytest.raises(StoreError, match="unreachable"):
        missing.ping()


def test_connect_to_an_unreachable_server_raises_without_the_password() -> None:
    with pytest.raises(StoreError, match="cannot migrate") as caught:
        Store.connect(closed_port_url())

    assert SECRET not in str(caught.value)
    assert caught.value.url.startswith("postgresql+psycopg://monitor:***@")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"nosuchdb://monitor:{SECRET}@host/db", "unsupported database 'nosuchdb'"),
        (f"mysql://monitor:{SECRET}@host/db", "unsupported database 'mysql'"),
        (f"postgresql+nosuchdriver://monitor:{SECRET}@host/db", "cannot load the database driver"),
        (f"postgresql://monitor:{SECRET}@host:no-port/db", "not a database URL"),
        (f"://monitor:{SECRET}@host/db", "not a database URL"),
    ],
)
def test_bad_urls_raise_store_error_without_the_password(url: str, problem: str) -> None:
    with pytest.raises(StoreError, match=problem) as caught:
        Store.connect(url)

    assert SECRET not in str(caught.value)
    assert isinstance(caught.value, RuntimeError)


def test_migrate_on_an_unreachable_server_raises_store_error() -> None:
    with pytest.raises(StoreError, match="cannot migrate"):
        migrate(closed_port_url())


def test_mask_url_hides_passwords_of_unparsable_urls_too() -> None:
    assert mask_url(f"weird://monitor:{SECRET}@host:port:extra/db") == (
        "weird://monitor:***@host:port:extra/db"
    )

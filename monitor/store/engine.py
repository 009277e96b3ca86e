"""Creating a SQLAlchemy engine set up for the store (SQLite tuning, PostgreSQL timeouts)."""

from __future__ import annotations

from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import ConnectionPoolEntry

from monitor.store.errors import StoreError

#: Execution option: on SQLite, a transaction begun with it set starts with ``BEGIN IMMEDIATE``.
WRITE_OPTION = "driftline_write"
#: The backends the store's upserts are written for.
SUPPORTED_DIALECTS = ("sqlite", "postgresql")


def create_engine(
    url: str | URL,
    *,
    busy_timeout_s: float = 30.0,
    connect_timeout_s: int = 10,
    **kwargs: Any,
) -> Engine:
    """Return an engine for ``url``, set up for the store; it does not connect yet.

    On SQLite every connection gets write-ahead logging (readers do not block
    the writer) and a busy timeout of ``busy_timeout_s``, and transactions are
    begun by SQLAlchemy (see :func:`configure_sqlite`). On PostgreSQL a
    connection attempt gives up after ``connect_timeout_s`` unless the URL sets
    ``connect_timeout`` itself, and pooled connections are pinged before use.
    ``kwargs`` go to :func:`sqlalchemy.create_engine`.

    Raises :class:`StoreError` (password masked) for a malformed URL or an
    unsupported or uninstalled database driver.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as error:
        raise StoreError(url, f"not a database URL ({error})") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise StoreError(
            parsed, f"unsupported database {backend!r}; use one of {', '.join(SUPPORTED_DIALECTS)}"
        )
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        if "connect_timeout" not in parsed.query:
            kwargs.setdefault("connect_args", {}).setdefault("connect_timeout", connect_timeout_s)
    try:
        engine = sqlalchemy.create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError, ArgumentError) as error:
        raise StoreError(parsed, f"cannot load the database driver ({error})") from None
    if backend == "sqlite":
        configure_sqlite(engine, busy_timeout_s=busy_timeout_s)
    return engine


def configure_sqlite(engine: Engine, *, busy_timeout_s: float = 30.0) -> None:
    """Add the store's SQLite settings to ``engine``'s connections; return nothing.

    Python's ``sqlite3`` (before 3.16) begins a transaction lazily, at the first
    INSERT/UPDATE/DELETE. A transaction that reads and then writes can then
    fail at once with "database is locked" (the busy timeout does not apply to
    upgrading a stale read snapshot). So SQLAlchemy emits the BEGIN itself:
    ``BEGIN IMMEDIATE`` (take the write lock, waiting up to the busy timeout)
    for connections carrying the :data:`WRITE_OPTION` execution option, a
    plain ``BEGIN`` otherwise.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

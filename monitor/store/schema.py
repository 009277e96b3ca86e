"""Bringing a database's schema up to date with the store's Alembic migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, select
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import SQLAlchemyError

from monitor.store.engine import WRITE_OPTION, create_engine
from monitor.store.errors import StoreError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant will do: processes migrating the same PostgreSQL database take turns on it.
_MIGRATION_LOCK_KEY = 0x64726966746C696E  # "driftlin"


def alembic_config() -> Config:
    """Return an Alembic configuration for the store's migrations (no ``alembic.ini`` needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision id of the store's schema (e.g. ``"0001"``)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database of ``engine`` is at, or None if it was never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(url_or_engine: str | URL | Engine) -> None:
    """Upgrade the database to the newest schema (``alembic upgrade head``); return nothing.

    Safe to call on every start: an up-to-date database is left alone, and on
    PostgreSQL processes starting together take turns (advisory lock) instead
    of racing to create the same tables. Raises :class:`StoreError` (URL
    password masked) if the database cannot be reached or a migration fails.
    """
    if isinstance(url_or_engine, Engine):
        _migrate(url_or_engine)
        return
    engine = create_engine(url_or_engine)
    try:
        _migrate(engine)
    finally:
        engine.dispose()


def _migrate(engine: Engine) -> None:
    config = alembic_config()
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as error:
        raise StoreError(engine.url, f"cannot migrate the schema: {_reason(error)}") from error


def _reason(error: SQLAlchemyError) -> str:
    """The driver's own message when there is one: SQLAlchemy's adds SQL and a help link."""
    cause = getattr(error, "orig", None)
    return " ".join(str(cause if cause is not None else error).split())

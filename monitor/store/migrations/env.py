"""Alembic environment of the store: migrates the connection :func:`monitor.store.migrate` passes.

Run from the ``alembic`` command line instead, it connects to the
``sqlalchemy.url`` of the Alembic configuration (online) or prints the SQL
for it (offline, ``alembic upgrade head --sql``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from monitor.store.engine import create_engine
from monitor.store.models import Base


def run_migrations_on(connection: Connection) -> None:
    """Run the pending migrations on ``connection`` in one transaction; return nothing."""
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite cannot ALTER most things: later migrations copy and move the table.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    """Migrate the configured connection, or the configured URL; return nothing."""
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations_on(connection)
        return
    if not url:
        raise RuntimeError("no connection passed and no sqlalchemy.url configured")
    engine = create_engine(url)
    try:
        with engine.connect() as own_connection:
            run_migrations_on(own_connection)
    finally:
        engine.dispose()


# Alembic sets ``context.config`` only while it runs this file; tools that merely
# import it (pytest --doctest-modules, mypy) must not start a migration.
if hasattr(context, "config"):
    run_migrations()

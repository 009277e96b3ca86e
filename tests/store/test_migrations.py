"""Migrations: from an empty database to head, idempotent, reversible, equal to the models."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import URL, Engine

from monitor.store import create_engine, current_revision, head_revision, migrate
from monitor.store.models import Base
from monitor.store.schema import alembic_config

TABLES = {
    "reference_profiles",
    "partials",
    "partition_progress",
    "window_claims",
    "window_summaries",
    "feature_results",
    "predictions",
    "labels",
    # 0002: the alerting layer's state, incidents, events and outbox
    "alert_cursors",
    "alert_rule_states",
    "alert_incidents",
    "alert_events",
    "alert_outbox",
    "alert_delivery_attempts",
}


def table_names(url: URL) -> set[str]:
    engine = create_engine(url)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_models_declare_the_documented_tables() -> None:
    assert set(Base.metadata.tables) == TABLES


def test_upgrade_from_empty_creates_every_table(database_url: URL) -> None:
    engine = create_engine(database_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        assert current_revision(engine) == head_revision() == "0005"
    finally:
        engine.dispose()
    assert table_names(database_url) == TABLES | {"alembic_version"}


def test_migrate_accepts_a_url_and_is_idempotent(database_url: URL) -> None:
    migrate(database_url)
    migrate(database_url.render_as_string(hide_password=False))
    assert table_names(database_url) == TABLES | {"alembic_version"}


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(database_url: URL) -> None:
    migrate(database_url)
    engine = create_engine(database_url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert table_names(database_url) == {"alembic_version"}
        migrate(engine)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert table_names(database_url) == TABLES | {"alembic_version"}


def test_migrated_database_matches_the_models_exactly(database_url: URL) -> None:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_named_check_constraints_and_indexes_exist(database_url: URL) -> None:
    # compare_metadata does not compare CHECK constraints; they guard the checkpoint.
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        inspector = sqlalchemy.inspect(engine)
        found = {
            table: (
                {index["name"] for index in inspector.get_indexes(table)},
                {check["name"] for check in inspector.get_check_constraints(table)},
            )
            for table in TABLES
        }
    finally:
        engine.dispose()
    expected = {
        name: (
            {index.name for index in table.indexes},
            {c.name for c in table.constraints if isinstance(c, sqlalchemy.CheckConstraint)},
        )
        for name, table in Base.metadata.tables.items()
    }
    assert found == expected


@contextmanager
def migrated_with_an_old_row(
    url: URL, previous: str, insert: str, params: dict[str, object]
) -> Iterator[Engine]:
    """Yield an engine on a database at ``previous``, given one row by ``insert``, now at head."""
    engine = create_engine(url)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, previous)
            connection.execute(sqlalchemy.text(insert), params)
        migrate(engine)
        yield engine
    finally:
        engine.dispose()


def downgrade(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_0003_adds_the_reference_version_columns_and_keeps_old_rows(database_url: URL) -> None:
    # 0003: the model version a reference describes and the window start it is in force from.
    insert = (
        "INSERT INTO reference_profiles (model, version, created_at, profile) "
        "VALUES ('m', 1, 1.0, :p)"
    )
    with migrated_with_an_old_row(database_url, "0002", insert, {"p": b"{}"}) as engine:
        columns = {
            c["name"]: c["nullable"]
            for c in sqlalchemy.inspect(engine).get_columns("reference_profiles")
        }
        with engine.connect() as connection:
            old = connection.execute(
                sqlalchemy.text("SELECT model_version, effective_from FROM reference_profiles")
            ).one()
        downgrade(engine, "0002")
        downgraded = {
            c["name"] for c in sqlalchemy.inspect(engine).get_columns("reference_profiles")
        }
    assert columns["model_version"] is True
    assert columns["effective_from"] is True
    assert tuple(old) == (None, None)  # an old reference: no model version, from the start
    assert "model_version" not in downgraded
    assert "effective_from" not in downgraded


def test_0004_adds_the_materiality_columns_and_keeps_old_rows(database_url: URL) -> None:
    # 0004: whether a feature's change was detectable and material, and the bound behind it.
    added = ("detectable", "material", "effect_size_lower", "min_effect_size")
    insert = (
        "INSERT INTO feature_results (model, window_start, feature, method, kind, "
        "statistic, p_value, threshold, drift, effect_size, missing_share, status) "
        "VALUES ('m', 0, 'x', 'ks', 'numeric', 0.3, 0.001, 0.05, :d, 0.3, 0, 'ok')"
    )
    with migrated_with_an_old_row(database_url, "0003", insert, {"d": True}) as engine:
        columns = {
            c["name"]: c["nullable"]
            for c in sqlalchemy.inspect(engine).get_columns("feature_results")
        }
        with engine.connect() as connection:
            old = connection.execute(
                sqlalchemy.text(f"SELECT {', '.join(added)}, drift FROM feature_results")
            ).one()
        downgrade(engine, "0003")
        downgraded = {c["name"] for c in sqlalchemy.inspect(engine).get_columns("feature_results")}
    assert all(columns[name] is True for name in added)
    assert tuple(old) == (None, None, None, None, True)  # the old decision survives
    assert not downgraded & set(added)


def test_0005_indexes_the_partials_window_end_and_keeps_rows(database_url: URL) -> None:
    # 0005: the due-windows query reads a range of window_end every evaluation round.
    name = "ix_partials_window_end_model_window_start"
    insert = (
        "INSERT INTO partials (model, window_start, window_end, topic, partition, "
        "sketch, rows, updated_at) VALUES ('m', 0, 60, 't', 0, :s, 5, 1)"
    )
    with migrated_with_an_old_row(database_url, "0004", insert, {"s": b"sketch"}) as engine:
        indexes = {
            index["name"]: index["column_names"]
            for index in sqlalchemy.inspect(engine).get_indexes("partials")
        }
        with engine.connect() as connection:
            kept = connection.execute(
                sqlalchemy.text("SELECT model, window_end, sketch FROM partials")
            ).one()
        downgrade(engine, "0004")
        downgraded = {index["name"] for index in sqlalchemy.inspect(engine).get_indexes("partials")}
    assert indexes[name] == ["window_end", "model", "window_start"]
    assert tuple(kept) == ("m", 60, b"sketch")
    assert name not in downgraded

"""Small statement builders shared by the repository: dialect upserts and row conversion."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from monitor.store.models import Base

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


def insert(dialect: str, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """Return the dialect's INSERT for ``model``, which has ``ON CONFLICT`` clauses."""
    if dialect == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def primary_key(model: type[Base]) -> list[str]:
    """Return the names of the primary-key columns of ``model``'s table."""
    return [column.name for column in model.__table__.primary_key]


def upsert(dialect: str, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """Return an INSERT that replaces every non-key column of a row whose key exists."""
    statement = insert(dialect, model)
    keys = primary_key(model)
    replace = {
        column.name: statement.excluded[column.name]
        for column in model.__table__.columns
        if column.name not in keys
    }
    return statement.on_conflict_do_update(index_elements=keys, set_=replace)


def values(row: DataclassInstance, **extra: Any) -> dict[str, Any]:
    """Return the fields of dataclass ``row`` as a column dict, plus ``extra`` columns."""
    return {f.name: getattr(row, f.name) for f in fields(row)} | extra


def last_per_key(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``rows`` with only the last of each primary key, in first-seen order.

    One PostgreSQL upsert statement may not touch the same row twice.
    """
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        unique[tuple(row[key] for key in keys)] = row
    return list(unique.values())


def select_as(model: type[Base], row_type: type[DataclassInstance]) -> Select[Any]:
    """Return a SELECT of the columns of ``model`` named like the fields of ``row_type``."""
    table_columns = model.__table__.columns
    return select(*(table_columns[f.name] for f in fields(row_type)))


def build(row_type: type[T], rows: Iterable[Row[Any]]) -> list[T]:
    """Return one ``row_type`` per result row, built from its column names."""
    return [row_type(**row._asdict()) for row in rows]

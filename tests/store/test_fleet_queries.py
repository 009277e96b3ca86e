"""Store queries for many models at once: due windows in one query, batched checkpoints."""

from __future__ import annotations

import math
from typing import Any

import pytest
import sqlalchemy

from monitor.store import PartialRow, ProgressRow, Store, WindowSummaryRow


def partial(model: str, start: float, partition: int, payload: bytes = b"sketch") -> PartialRow:
    return PartialRow(
        model=model,
        window_start=start,
        window_end=start + 60,
        topic="t",
        partition=partition,
        sketch=payload,
        rows=3,
    )


def progress(partition: int, offset: int) -> ProgressRow:
    return ProgressRow(
        topic="t", partition=partition, next_offset=offset, max_event_time=None,
        last_record_at=None,
    )  # fmt: skip


def done(store: Store, model: str, start: float) -> None:
    store.finish_window(
        model,
        start,
        WindowSummaryRow(
            model=model,
            window_start=start,
            window_end=start + 60,
            rows=3,
            status="ok",
            dataset_drift=False,
            drift_share=0.0,
        ),
        [],
    )


def test_due_windows_gives_each_model_its_windows_up_to_its_own_mark(store: Store) -> None:
    store.checkpoint(
        "g",
        [partial(m, s, p) for m in ("a", "b", "c") for s in (0.0, 60.0, 120.0) for p in (0, 1)],
        [progress(0, 10), progress(1, 10)],
    )
    done(store, "a", 0.0)
    due = store.due_windows({"a": 120.0, "b": 60.0, "c": 0.0})
    assert due == {"a": [(60.0, 120.0)], "b": [(0.0, 60.0)]}
    # The same as one open_windows query per model.
    for model, mark in {"a": 120.0, "b": 60.0}.items():
        assert store.open_windows(model, mark) == due[model]
    assert store.due_windows({"b": math.inf}) == {"b": [(0.0, 60.0), (60.0, 120.0), (120.0, 180.0)]}
    assert store.due_windows({}) == {}


def test_a_checkpoint_of_many_partials_writes_them_all_and_reports_its_size(
    store: Store,
) -> None:
    seen: list[tuple[int, int, float]] = []
    store.checkpoint_observer = lambda rows, size, seconds: seen.append((rows, size, seconds))
    rows = [partial(f"m{k:03d}", 0.0, p, b"x" * k) for k in range(300) for p in range(3)]
    store.checkpoint("g", rows, [progress(p, 5) for p in range(3)])
    assert len(store.partials_for_window("m123", 0.0)) == 3
    assert store.partials_for_window("m123", 0.0)[1].sketch == b"x" * 123
    # A second checkpoint replaces rows (the last of duplicate keys counts).
    store.checkpoint(
        "g",
        [partial("m123", 0.0, 1, b"old"), partial("m123", 0.0, 1, b"new")],
        [progress(1, 6)],
        expected={("t", 1): 5},
    )
    assert [p.sketch for p in store.partials_for_window("m123", 0.0)] == [
        b"x" * 123,
        b"new",
        b"x" * 123,
    ]
    assert [(r, s) for r, s, _ in seen] == [(900, 3 * sum(range(300))), (1, 3)]
    assert all(seconds >= 0 for *_, seconds in seen)


def test_profiles_since_many_is_profiles_since_of_every_model(store: Store) -> None:
    for model, versions in {"a": 3, "b": 1, "c": 2}.items():
        for _ in range(versions):
            store.save_profile(model, b"profile", model_version="7")
    newer = store.profiles_since_many({"a": 1, "b": 1, "c": 0, "unknown": 0})
    assert newer == {"a": store.profiles_since("a", 1), "c": store.profiles_since("c", 0)}
    assert [row.version for row in newer["a"]] == [2, 3]
    assert store.profiles_since_many({"a": 3, "b": 1}) == {}
    assert store.profiles_since_many({}) == {}


def test_newest_window_starts_is_each_models_latest_result_in_one_query(store: Store) -> None:
    for model, starts in {"a": (0.0, 120.0, 60.0), "b": (60.0,)}.items():
        for start in starts:
            done(store, model, start)
    statements: list[str] = []
    sqlalchemy.event.listen(
        store.engine, "before_cursor_execute", lambda *a: a[2] == "BEGIN" or statements.append(a[2])
    )
    newest = store.newest_window_starts(["a", "b", "c"])
    assert newest == {"a": 120.0, "b": 60.0}  # c has no result
    assert len(statements) == 1
    assert store.newest_window_starts([]) == {}


def test_postgresql_answers_due_windows_from_the_window_end_index(store: Store) -> None:
    # Migration 0005: the due-windows query reads the index, not the partials' heap of sketches.
    if store.engine.dialect.name != "postgresql":
        pytest.skip("the query plan is PostgreSQL's")
    sketch = bytes(range(256)) * 8  # 2 KB, about a small partial
    rows = [partial(f"m{k:02d}", 60.0 * w, p, sketch) for k in range(20) for w in range(25)
            for p in range(4)]  # fmt: skip
    store.checkpoint("g", rows, [progress(p, 10) for p in range(4)])
    for k in range(20):
        for w in range(24):
            done(store, f"m{k:02d}", 60.0 * w)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE partials")
        connection.exec_driver_sql("VACUUM ANALYZE window_claims")
    captured: list[tuple[str, Any]] = []
    sqlalchemy.event.listen(
        store.engine,
        "before_cursor_execute",
        lambda _c, _k, statement, parameters, *_: captured.append((statement, parameters)),
    )
    due = store.due_windows({f"m{k:02d}": 60.0 * 25 for k in range(20)})
    assert due == {f"m{k:02d}": [(60.0 * 24, 60.0 * 25)] for k in range(20)}
    ((statement, parameters),) = [c for c in captured if "partials" in c[0]]
    with store.engine.connect() as connection:
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        )
    assert "ix_partials_window_end_model_window_start" in plan

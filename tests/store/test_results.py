"""Window results: finish_window replaces them in one transaction; summaries page newest first."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from monitor.store import FeatureResultRow, PartialRow, Store, WindowSummaryRow
from tests.store._clock import FakeClock


def summary(window_start: float, **changes: object) -> WindowSummaryRow:
    fields: dict[str, object] = {
        "model": "credit-risk",
        "window_start": window_start,
        "window_end": window_start + 60.0,
        "rows": 500,
        "status": "ok",
        "dataset_drift": True,
        "drift_share": 0.5,
        "prediction_drift": None,
        "details": {"profile_version": 3, "quality": {"accuracy": 0.91}},
    }
    fields.update(changes)
    return WindowSummaryRow(**fields)  # type: ignore[arg-type]


def feature(name: str, method: str = "ks", **changes: object) -> FeatureResultRow:
    fields: dict[str, object] = {
        "model": "credit-risk",
        "window_start": 0.0,
        "feature": name,
        "method": method,
        "kind": "numeric",
        "statistic": 0.31,
        "p_value": 1.2e-9,
        "threshold": 0.05,
        "drift": True,
        "effect_size": 0.8,
        "missing_share": 0.01,
        "status": "ok",
    }
    fields.update(changes)
    return FeatureResultRow(**fields)  # type: ignore[arg-type]


def test_finish_window_stores_summary_and_features(store: Store, clock: FakeClock) -> None:
    features = [
        feature("income"),
        feature("age", statistic=0.02, p_value=0.4, drift=False),
        feature("region", "psi", kind="categorical", p_value=None, threshold=0.2, effect_size=None),
    ]

    store.finish_window("credit-risk", 0.0, summary(0.0), features)

    assert store.window_summaries("credit-risk", limit=10) == [summary(0.0, evaluated_at=clock.now)]
    assert store.feature_results("credit-risk", 0.0) == sorted(
        features, key=lambda row: (row.feature, row.method)
    )


def test_finish_window_again_overwrites_the_results(store: Store, clock: FakeClock) -> None:
    store.finish_window("credit-risk", 0.0, summary(0.0), [feature("income"), feature("age")])
    clock.advance(3600)

    store.finish_window(
        "credit-risk",
        0.0,
        summary(0.0, dataset_drift=False, drift_share=0.0, prediction_drift=False),
        [feature("income", drift=False, statistic=0.01)],
    )

    assert store.window_summaries("credit-risk", limit=10) == [
        summary(
            0.0,
            dataset_drift=False,
            drift_share=0.0,
            prediction_drift=False,
            evaluated_at=clock.now,
        )
    ]
    assert store.feature_results("credit-risk", 0.0) == [
        feature("income", drift=False, statistic=0.01)
    ]


def test_finish_window_rejects_rows_of_another_window(store: Store) -> None:
    with pytest.raises(ValueError, match="got a row of"):
        store.finish_window("credit-risk", 0.0, summary(0.0), [feature("age", window_start=60.0)])
    with pytest.raises(ValueError, match="got a row of"):
        store.finish_window("credit-risk", 0.0, summary(60.0), [])

    assert store.window_summaries("credit-risk", limit=10) == []


def test_failed_finish_window_leaves_the_window_unfinished(store: Store) -> None:
    store.claim_window("credit-risk", 0.0, 60.0, "me", stale_after_s=300)
    store.checkpoint(
        "g",
        [
            PartialRow(
                model="credit-risk",
                window_start=0.0,
                window_end=60.0,
                topic="t",
                partition=0,
                sketch=b"s",
                rows=1,
            )
        ],
        [],
    )

    with pytest.raises(IntegrityError, match="status"):
        store.finish_window("credit-risk", 0.0, summary(0.0, status="bogus"), [feature("age")])

    assert store.feature_results("credit-risk", 0.0) == []
    assert store.open_windows("credit-risk", up_to_end=60.0) == [(0.0, 60.0)]


def test_window_summaries_page_newest_first(store: Store) -> None:
    for index in range(5):
        store.finish_window("credit-risk", 60.0 * index, summary(60.0 * index), [])
    store.finish_window("churn", 0.0, summary(0.0, model="churn"), [])

    first = store.window_summaries("credit-risk", limit=2)
    second = store.window_summaries("credit-risk", limit=2, before=first[-1].window_start)
    last = store.window_summaries("credit-risk", limit=2, before=second[-1].window_start)

    assert [row.window_start for row in first + second + last] == [240, 180, 120, 60, 0]
    assert store.window_summaries("credit-risk", limit=2, before=0.0) == []


def test_insufficient_data_summary_round_trips(store: Store) -> None:
    row = summary(
        0.0, rows=3, status="insufficient_data", dataset_drift=False, drift_share=0.0, details={}
    )

    store.finish_window("credit-risk", 0.0, row, [])

    [stored] = store.window_summaries("credit-risk", limit=1)
    assert stored.status == "insufficient_data"
    assert stored.details == {}
    assert stored.rows == 3

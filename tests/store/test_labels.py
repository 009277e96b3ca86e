"""Predictions and labels: deduplicated storage, joins, coverage and retention."""

from __future__ import annotations

from monitor.store import (
    JoinedPrediction,
    LabelRow,
    PartialRow,
    PredictionRow,
    ProgressRow,
    Store,
    WindowSummaryRow,
)
from tests.store.test_results import feature, summary


def prediction(
    request_id: str,
    event_time: float,
    label: str | None = "approve",
    score: float | None = 0.8,
    model: str = "credit-risk",
) -> PredictionRow:
    return PredictionRow(
        model=model,
        request_id=request_id,
        event_time=event_time,
        window_start=event_time // 60 * 60,
        label=label,
        score=score,
    )


def label(
    request_id: str, value: str, event_time: float = 500.0, model: str = "credit-risk"
) -> LabelRow:
    return LabelRow(model=model, request_id=request_id, label=value, event_time=event_time)


def test_duplicate_predictions_keep_the_first(store: Store) -> None:
    store.save_predictions([prediction("r1", 10.0, "approve"), prediction("r1", 11.0, "deny")])
    store.save_predictions([prediction("r1", 12.0, "deny"), prediction("r2", 20.0)])
    store.save_labels([label("r1", "approve"), label("r2", "approve")])

    assert store.label_coverage("credit-risk", 0.0, 60.0) == (2, 2)
    assert store.joined("credit-risk", 0.0, 60.0)[0] == JoinedPrediction("approve", 0.8, "approve")


def test_join_returns_labelled_predictions_of_the_window(store: Store) -> None:
    store.save_predictions(
        [
            prediction("r1", 10.0, "approve", 0.9),
            prediction("r2", 20.0, "deny", 0.2),
            prediction("r3", 30.0, None, 0.5),
            prediction("r4", 60.0, "approve", 0.7),  # next window
            prediction("r5", 15.0, "deny", 0.1, model="churn"),
        ]
    )
    store.save_labels(
        [
            label("r3", "deny"),
            label("r1", "deny"),
            label("r4", "approve"),
            label("r9", "approve"),
            label("r5", "deny", model="churn"),
        ]
    )

    assert store.joined("credit-risk", 0.0, 60.0) == [
        JoinedPrediction("approve", 0.9, "deny"),
        JoinedPrediction(None, 0.5, "deny"),
    ]
    assert store.label_coverage("credit-risk", 0.0, 60.0) == (2, 3)
    assert store.label_coverage("credit-risk", 60.0, 120.0) == (1, 1)
    assert store.label_coverage("credit-risk", 120.0, 180.0) == (0, 0)


def test_label_arriving_before_its_prediction_joins_later(store: Store) -> None:
    store.save_labels([label("r1", "approve")])
    assert store.label_coverage("credit-risk", 0.0, 60.0) == (0, 0)

    store.save_predictions([prediction("r1", 10.0, "deny", None)])

    assert store.joined("credit-risk", 0.0, 60.0) == [JoinedPrediction("deny", None, "approve")]


def test_a_label_sent_again_replaces_the_first(store: Store) -> None:
    store.save_predictions([prediction("r1", 10.0)])
    store.save_labels([label("r1", "deny")])

    store.save_labels([label("r1", "approve"), label("r1", "approve-final")])

    assert store.joined("credit-risk", 0.0, 60.0) == [
        JoinedPrediction("approve", 0.8, "approve-final")
    ]


def test_retention_deletes_old_predictions_and_labels_only(store: Store) -> None:
    store.save_predictions(
        [prediction("old", 10.0), prediction("new", 100.0), prediction("other", 10.0, model="x")]
    )
    store.save_labels(
        [
            label("old", "approve", event_time=5000.0),  # goes with its prediction
            label("orphan", "approve", event_time=20.0),  # old, no prediction
            label("new", "deny", event_time=150.0),
            label("other", "deny", event_time=20.0, model="x"),
        ]
    )
    partial = PartialRow(
        model="credit-risk",
        window_start=0.0,
        window_end=60.0,
        topic="t",
        partition=0,
        sketch=b"s",
        rows=1,
    )
    store.checkpoint("g", [partial], [ProgressRow(topic="t", partition=0, next_offset=1)])

    deleted = store.delete_older_than("credit-risk", cutoff_event_time=50.0)

    assert deleted == 3  # "old" prediction, its label, and the orphan label
    assert store.label_coverage("credit-risk", 0.0, 1000.0) == (1, 1)
    assert store.label_coverage("x", 0.0, 1000.0) == (1, 1)
    assert store.partials_for_window("credit-risk", 0.0) == [partial]
    assert store.progress("g", "t")[0].next_offset == 1
    assert store.delete_older_than("credit-risk", cutoff_event_time=50.0) == 0


def test_empty_batches_are_no_ops(store: Store) -> None:
    store.save_predictions([])
    store.save_labels([])
    store.checkpoint("g", [], [])

    assert store.label_coverage("credit-risk", 0.0, 60.0) == (0, 0)


def test_partials_of_evaluated_old_windows_are_deleted(store: Store) -> None:
    """Only windows that ended before the cutoff *and* were evaluated lose their partials."""

    def partial(start: float, partition: int) -> PartialRow:
        return PartialRow(
            model="credit-risk",
            window_start=start,
            window_end=start + 60.0,
            topic="t",
            partition=partition,
            sketch=b"s",
            rows=1,
        )

    rows = [partial(start, p) for start in (0.0, 60.0, 120.0) for p in (0, 1)]
    other = PartialRow(
        model="other",
        window_start=0.0,
        window_end=60.0,
        topic="t",
        partition=0,
        sketch=b"s",
        rows=1,
    )
    store.checkpoint("g", [*rows, other], [])
    for start in (0.0, 120.0):  # window 60 stays unevaluated
        assert store.claim_window("credit-risk", start, start + 60.0, "me", 60.0)
        summary = WindowSummaryRow(
            model="credit-risk",
            window_start=start,
            window_end=start + 60.0,
            rows=2,
            status="ok",
            dataset_drift=False,
            drift_share=0.0,
        )
        store.finish_window("credit-risk", start, summary, [])
    assert store.claim_window("other", 0.0, 60.0, "me", 60.0)

    assert store.delete_partials_before("credit-risk", cutoff_window_end=150.0) == 2
    assert store.partials_for_window("credit-risk", 0.0) == []
    assert len(store.partials_for_window("credit-risk", 60.0)) == 2  # not evaluated
    assert len(store.partials_for_window("credit-risk", 120.0)) == 2  # ends after the cutoff
    assert store.partials_for_window("other", 0.0) == [other]  # another model
    assert store.delete_partials_before("credit-risk", cutoff_window_end=150.0) == 0


def test_results_of_old_windows_are_deleted_and_claims_once_partials_are_gone(
    store: Store,
) -> None:
    """``retention.results``: summaries and feature rows go; a claim goes only without partials."""

    partial = PartialRow(
        model="credit-risk",
        window_start=60.0,
        window_end=120.0,
        topic="t",
        partition=0,
        sketch=b"s",
        rows=1,
    )
    store.checkpoint("g", [partial], [])
    for model, start in (
        ("credit-risk", 0.0),
        ("credit-risk", 60.0),
        ("credit-risk", 600.0),
        ("other", 0.0),
    ):
        assert store.claim_window(model, start, start + 60.0, "me", 60.0)
        features = [feature("x", window_start=start)] if model == "credit-risk" else []
        store.finish_window(model, start, summary(start, model=model), features)
    # windows 0 and 60 ended before 300: their summaries and feature rows go, and the claim of
    # window 0 (no partials); window 60 keeps its claim while its partial remains.
    assert store.delete_results_before("credit-risk", cutoff_window_end=300.0) == 2 + 2 + 1
    kept = {w.window_start for w in store.window_results("credit-risk", limit=10)}
    assert kept == {600.0}
    assert store.feature_results("credit-risk", 0.0) == []
    assert not store.claim_window("credit-risk", 60.0, 120.0, "other", 60.0)  # still done
    assert store.claim_window("credit-risk", 0.0, 60.0, "other", 60.0)  # claim gone
    assert [w.window_start for w in store.window_results("other", limit=10)] == [0.0]

"""Checkpoints: partial sketches and offsets are written together or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from monitor.store import PartialRow, ProgressRow, StaleReferenceError, Store, WindowSummaryRow
from tests.store._clock import FakeClock


def partial(
    window_start: float = 0.0, partition: int = 0, sketch: bytes = b"s", rows: int = 1, **kw: object
) -> PartialRow:
    fields: dict[str, object] = {
        "model": "credit-risk",
        "window_start": window_start,
        "window_end": window_start + 60.0,
        "topic": "predictions",
        "partition": partition,
        "sketch": sketch,
        "rows": rows,
    }
    fields.update(kw)
    return PartialRow(**fields)  # type: ignore[arg-type]


def test_checkpoint_writes_partials_and_progress(store: Store) -> None:
    store.checkpoint(
        "group",
        [partial(0.0, 0, b"a", 3), partial(0.0, 1, b"b", 4), partial(60.0, 0, b"c", 5)],
        [
            ProgressRow(
                topic="predictions",
                partition=0,
                next_offset=8,
                max_event_time=70.0,
                last_record_at=1.5,
            ),
            ProgressRow(topic="predictions", partition=1, next_offset=4),
        ],
    )

    assert store.progress("group", "predictions") == {
        0: ProgressRow(
            topic="predictions", partition=0, next_offset=8, max_event_time=70.0, last_record_at=1.5
        ),
        1: ProgressRow(topic="predictions", partition=1, next_offset=4),
    }
    assert store.partials_for_window("credit-risk", 0.0) == [
        partial(0.0, 0, b"a", 3),
        partial(0.0, 1, b"b", 4),
    ]
    assert store.partials_for_partition("predictions", 0) == [
        partial(0.0, 0, b"a", 3),
        partial(60.0, 0, b"c", 5),
    ]
    assert store.partials_for_partition("predictions", 0, since_window_start=60.0) == [
        partial(60.0, 0, b"c", 5)
    ]
    assert store.progress("other-group", "predictions") == {}


def test_checkpoint_replaces_rows_instead_of_merging(store: Store) -> None:
    store.checkpoint(
        "group",
        [partial(0.0, 0, b"first", 3)],
        [ProgressRow(topic="predictions", partition=0, next_offset=3)],
    )

    store.checkpoint(
        "group",
        [partial(0.0, 0, b"second", 7)],
        [ProgressRow(topic="predictions", partition=0, next_offset=7)],
    )

    assert store.partials_for_window("credit-risk", 0.0) == [partial(0.0, 0, b"second", 7)]
    assert store.progress("group", "predictions")[0].next_offset == 7


def test_last_row_of_a_key_wins_within_one_checkpoint(store: Store) -> None:
    store.checkpoint(
        "group",
        [partial(0.0, 0, b"old", 1), partial(0.0, 0, b"new", 2)],
        [
            ProgressRow(topic="predictions", partition=0, next_offset=1),
            ProgressRow(topic="predictions", partition=0, next_offset=2),
        ],
    )

    assert store.partials_for_window("credit-risk", 0.0) == [partial(0.0, 0, b"new", 2)]
    assert store.progress("group", "predictions")[0].next_offset == 2


def test_failed_checkpoint_writes_nothing(store: Store) -> None:
    store.checkpoint(
        "group",
        [partial(0.0, 0, b"kept", 3)],
        [ProgressRow(topic="predictions", partition=0, next_offset=3)],
    )

    with pytest.raises(IntegrityError):
        store.checkpoint(
            "group",
            [
                partial(0.0, 0, b"lost", 9),
                partial(0.0, 1, b"lost", 9),
                partial(60.0, 2, b"broken", -1),  # violates rows >= 0, after the others
            ],
            [
                ProgressRow(topic="predictions", partition=0, next_offset=9),
                ProgressRow(topic="predictions", partition=1, next_offset=9),
            ],
        )

    assert store.partials_for_window("credit-risk", 0.0) == [partial(0.0, 0, b"kept", 3)]
    assert store.partials_for_partition("predictions", 2) == []
    assert store.progress("group", "predictions") == {
        0: ProgressRow(topic="predictions", partition=0, next_offset=3)
    }


def test_large_offsets_and_sketches_round_trip(store: Store) -> None:
    sketch = bytes(range(256)) * 4096
    store.checkpoint(
        "group",
        [partial(0.0, 0, sketch, 2**31 - 1)],
        [ProgressRow(topic="predictions", partition=0, next_offset=2**40)],
    )

    assert store.partials_for_window("credit-risk", 0.0)[0].sketch == sketch
    assert store.progress("group", "predictions")[0].next_offset == 2**40


def test_open_windows_are_due_and_not_done(store: Store, clock: FakeClock) -> None:
    store.checkpoint(
        "group",
        [partial(0.0, 0), partial(0.0, 1), partial(60.0, 0), partial(120.0, 0)],
        [],
    )
    assert store.claim_window("credit-risk", 60.0, 120.0, "me", stale_after_s=60)
    store.finish_window(
        "credit-risk",
        0.0,
        WindowSummaryRow(
            model="credit-risk",
            window_start=0.0,
            window_end=60.0,
            rows=2,
            status="ok",
            dataset_drift=False,
            drift_share=0.0,
        ),
        [],
    )

    # 0 is done, 60 is claimed but not done (still open), 120 ends after the watermark.
    assert store.open_windows("credit-risk", up_to_end=150.0) == [(60.0, 120.0)]
    assert store.open_windows("credit-risk", up_to_end=180.0) == [(60.0, 120.0), (120.0, 180.0)]
    assert store.open_windows("other-model", up_to_end=180.0) == []


def test_a_checkpoint_refuses_partials_a_reference_stored_meanwhile_overtook(store: Store) -> None:
    """A reference its writer has not seen, in force for a partial's window: nothing written."""
    assert store.save_profile("credit-risk", b"v1") == 1
    store.checkpoint("g", [partial(window_start=0.0)], [], seen_versions={"credit-risk": 1})
    # Version 2 stored by someone else, in force from window 120 on.
    assert store.save_profile("credit-risk", b"v2", effective_from=120.0) == 2
    store.checkpoint("g", [partial(window_start=60.0)], [], seen_versions={"credit-risk": 1})
    with pytest.raises(StaleReferenceError) as refused:
        store.checkpoint(
            "g",
            [partial(window_start=60.0, sketch=b"new"), partial(window_start=120.0)],
            [ProgressRow(topic="predictions", partition=0, next_offset=9)],
            seen_versions={"credit-risk": 1},
        )
    assert refused.value.windows == [("credit-risk", 120.0)]
    # Nothing of the refused checkpoint was written.
    assert [p.window_start for p in store.partials_for_window("credit-risk", 120.0)] == []
    assert [p.sketch for p in store.partials_for_window("credit-risk", 60.0)] == [b"s"]
    assert store.progress("g", "predictions") == {}
    # Once the writer knows version 2, the same partials are accepted.
    store.checkpoint("g", [partial(window_start=120.0)], [], seen_versions={"credit-risk": 2})
    assert len(store.partials_for_window("credit-risk", 120.0)) == 1
    # Without seen_versions (callers that do not track references) nothing is checked.
    assert store.save_profile("credit-risk", b"v3") == 3  # in force from the start
    store.checkpoint("g", [partial(window_start=180.0)], [])

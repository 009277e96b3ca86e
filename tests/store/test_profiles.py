"""Reference profiles: versions count up per model; reads of absent versions return None."""

from __future__ import annotations

import threading

from monitor.store import Store, WindowSummaryRow


def test_versions_count_from_one_per_model(store: Store) -> None:
    assert store.save_profile("credit-risk", b"v1") == 1
    assert store.save_profile("credit-risk", b"v2") == 2
    assert store.save_profile("churn", b"c1") == 1

    assert store.latest_profile("credit-risk") == (2, b"v2")
    assert store.profile("credit-risk", 1) == b"v1"
    assert store.latest_profile("churn") == (1, b"c1")


def test_absent_profiles_are_none(store: Store) -> None:
    store.save_profile("credit-risk", b"v1")

    assert store.latest_profile("unknown") is None
    assert store.profile("credit-risk", 2) is None


def test_profile_bytes_round_trip_unchanged(store: Store) -> None:
    payload = bytes(range(256)) * 1000

    version = store.save_profile("credit-risk", payload)

    assert store.profile("credit-risk", version) == payload


def test_concurrent_saves_get_distinct_versions(store: Store) -> None:
    versions: list[int] = []
    barrier = threading.Barrier(4)

    def save(index: int) -> None:
        barrier.wait()
        versions.append(store.save_profile("credit-risk", f"p{index}".encode()))

    threads = [threading.Thread(target=save, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(versions) == [1, 2, 3, 4]


def test_models_lists_models_with_a_profile_or_results(store: Store) -> None:
    store.save_profile("b-model", b"p")
    store.finish_window(
        "a-model",
        0.0,
        WindowSummaryRow(
            model="a-model",
            window_start=0.0,
            window_end=60.0,
            rows=0,
            status="insufficient_data",
            dataset_drift=False,
            drift_share=0.0,
        ),
        [],
    )

    assert store.models() == ["a-model", "b-model"]

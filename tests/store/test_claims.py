"""Window claims: exactly one winner among threads and processes; stale claims are taken over."""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

from sqlalchemy.engine import URL

from monitor.store import Store, WindowSummaryRow
from tests.store import _race
from tests.store._clock import FakeClock

THREADS = 8
# Races are repeated: one round may happen not to interleave the threads.
ROUNDS = 10


def race(store: Store, window_start: float, owners: list[str], stale_after_s: float) -> list[str]:
    """Let every owner claim the window at once; return the owners that won."""
    barrier = threading.Barrier(len(owners))
    winners: list[str] = []
    errors: list[BaseException] = []

    def claim(owner: str) -> None:
        try:
            barrier.wait(timeout=30)
            if store.claim_window("m", window_start, window_start + 60, owner, stale_after_s):
                winners.append(owner)
        except BaseException as error:  # reported by the test thread below
            errors.append(error)

    threads = [threading.Thread(target=claim, args=(owner,)) for owner in owners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return winners


def summary(window_start: float) -> WindowSummaryRow:
    return WindowSummaryRow(
        model="m",
        window_start=window_start,
        window_end=window_start + 60,
        rows=10,
        status="ok",
        dataset_drift=False,
        drift_share=0.0,
    )


def test_first_claim_wins_and_later_ones_lose(store: Store) -> None:
    assert store.claim_window("m", 0.0, 60.0, "a", stale_after_s=300) is True
    assert store.claim_window("m", 0.0, 60.0, "b", stale_after_s=300) is False
    assert store.claim_window("m", 0.0, 60.0, "a", stale_after_s=300) is False
    assert store.claim_window("m", 60.0, 120.0, "b", stale_after_s=300) is True
    assert store.claim_window("other", 0.0, 60.0, "b", stale_after_s=300) is True


def test_threads_racing_for_a_window_have_exactly_one_winner(store: Store) -> None:
    owners = [f"thread-{i}" for i in range(THREADS)]
    for window_start in [60.0 * i for i in range(ROUNDS)]:
        assert len(race(store, window_start, owners, stale_after_s=300)) == 1


def test_processes_racing_for_windows_have_exactly_one_winner_each(database_url: URL) -> None:
    Store.connect(database_url).close()  # migrated before the race
    starts = [60.0 * i for i in range(20)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    url = database_url.render_as_string(hide_password=False)
    processes = [
        context.Process(target=_race.claim_all, args=(url, starts, owner, barrier, results))
        for owner in ("process-a", "process-b")
    ]
    for process in processes:
        process.start()
    won = dict(results.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    wins = Counter(start for starts_won in won.values() for start in starts_won)
    assert wins == Counter(starts)


def test_stale_claim_is_taken_over_once(store: Store, clock: FakeClock) -> None:
    assert store.claim_window("m", 0.0, 60.0, "dead", stale_after_s=300)
    clock.advance(299)
    assert store.claim_window("m", 0.0, 60.0, "early", stale_after_s=300) is False

    clock.advance(2)
    assert store.claim_window("m", 0.0, 60.0, "late", stale_after_s=300) is True
    # The takeover restarted the claim's age: nobody can take it from the new owner yet.
    assert store.claim_window("m", 0.0, 60.0, "later", stale_after_s=300) is False


def test_threads_racing_for_a_stale_claim_have_exactly_one_winner(
    store: Store, clock: FakeClock
) -> None:
    starts = [60.0 * i for i in range(ROUNDS)]
    for window_start in starts:
        assert store.claim_window("m", window_start, window_start + 60, "dead", 300)
    clock.advance(301)

    owners = [f"thread-{i}" for i in range(THREADS)]
    for window_start in starts:
        assert len(race(store, window_start, owners, stale_after_s=300)) == 1


def test_done_window_is_never_claimed_again(store: Store, clock: FakeClock) -> None:
    assert store.claim_window("m", 0.0, 60.0, "a", stale_after_s=300)
    store.finish_window("m", 0.0, summary(0.0), [])

    clock.advance(10_000)

    assert store.claim_window("m", 0.0, 60.0, "b", stale_after_s=300) is False

"""Backoff with full jitter and the delivery policy: bounds, growth, jitter, validation."""

from __future__ import annotations

import random
import statistics
from collections import defaultdict

import pytest

from alerts.backoff import DeliveryPolicy, InvalidPolicyError, backoff_ceiling, next_delay
from alerts.delivery import Deliverer, Request
from alerts.outbox import MemoryOutbox, OutboxEvent
from tests.alerts.receiver import Receiver


def test_ceiling_doubles_up_to_the_cap() -> None:
    ceilings = [backoff_ceiling(n, base_s=1, factor=2, max_s=300) for n in range(1, 12)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_ceiling_of_a_huge_attempt_is_the_cap() -> None:
    assert backoff_ceiling(100_000, base_s=1, factor=2, max_s=300) == 300


def test_delays_are_jittered_within_bounds_and_grow_on_average() -> None:
    rng = random.Random(7)
    means = []
    for attempt in range(1, 10):
        ceiling = backoff_ceiling(attempt)
        delays = [next_delay(attempt, rng=rng) for _ in range(2000)]
        assert all(0 <= d <= ceiling for d in delays)
        assert len(set(delays)) == len(delays)  # jittered: no two equal
        # Full jitter: uniform on [0, ceiling], so the mean is about half of it.
        assert statistics.fmean(delays) == pytest.approx(ceiling / 2, rel=0.06)
        means.append(statistics.fmean(delays))
    assert means == sorted(means)


def test_a_seeded_rng_repeats_the_same_delays() -> None:
    first = [next_delay(n, rng=random.Random(3)) for n in range(1, 8)]
    again = [next_delay(n, rng=random.Random(3)) for n in range(1, 8)]
    assert first == again


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": 1, "base_s": 0}, "base_s"),
        ({"attempt": 1, "factor": 0.5}, "factor"),
        ({"attempt": 1, "base_s": 10, "max_s": 5}, "max_s"),
        ({"attempt": 1, "max_s": float("inf")}, "max_s"),
    ],
)
def test_invalid_backoff_arguments_name_the_parameter(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(InvalidPolicyError, match=f"^{name} ") as info:
        next_delay(rng=random.Random(0), **kwargs)  # type: ignore[arg-type]
    assert info.value.name == name
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_age_s": -1}, "max_age_s"),
        ({"concurrency": 0}, "concurrency"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"backoff_base_s": 0}, "backoff_base_s"),
        ({"backoff_factor": 0.9}, "backoff_factor"),
        ({"backoff_max_s": 0.5}, "backoff_max_s"),
        ({"idle_sleep_s": float("nan")}, "idle_sleep_s"),
        # 4 rounds (32 events, 8 at a time) of up to 10 s each do not fit in a 40 s lease.
        ({"timeout_s": 10, "batch_size": 32, "concurrency": 8, "lease_s": 40}, "lease_s"),
    ],
)
def test_invalid_policies_name_the_parameter(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(InvalidPolicyError) as info:
        DeliveryPolicy(**kwargs)  # type: ignore[arg-type]
    assert info.value.name == name
    assert str(info.value).startswith(f"{name} must be")


def test_the_default_policy_is_valid() -> None:
    policy = DeliveryPolicy()
    assert policy.concurrency == 8
    assert policy.max_age_s == 86_400


@pytest.mark.integration
def test_retries_against_a_failing_receiver_back_off_with_growing_jittered_delays() -> None:
    """Every failed attempt is rescheduled within its ceiling; later attempts wait longer."""
    now = [1_000_000.0]
    outbox = MemoryOutbox()
    for i in range(40):
        outbox.enqueue(
            OutboxEvent(
                event_id=f"e{i}", target="t", payload=b"{}", created_at=now[0], next_attempt_at=0
            )
        )
    policy = DeliveryPolicy(
        timeout_s=2, batch_size=40, concurrency=8, lease_s=60, backoff_base_s=1, backoff_max_s=60
    )
    delays: dict[int, list[float]] = defaultdict(list)
    with (
        Receiver(default_status=503) as receiver,
        Deliverer(
            outbox=outbox,
            render=lambda e, _now: Request(
                method="POST",
                url=receiver.url,
                headers=[("X-Driftline-Event-Id", e.event_id)],
                body=e.payload,
            ),
            policy=policy,
            clock=lambda: now[0],
            rng=random.Random(11),
        ) as deliverer,
    ):
        for attempt in range(1, 8):
            report = deliverer.run_once()
            assert report.retried == 40
            for i in range(40):
                event = outbox.get(f"e{i}", "t")
                assert event is not None
                assert event.attempts == attempt
                delay = event.next_attempt_at - now[0]
                assert 0 <= delay <= backoff_ceiling(attempt, base_s=1, max_s=60)
                delays[attempt].append(delay)
            now[0] += 61  # past every scheduled retry
    assert len(receiver.requests) == 7 * 40
    means = [statistics.fmean(delays[a]) for a in range(1, 8)]
    # Ceilings 1, 2, 4, ... 60: the mean delay grows until the cap.
    assert means[:6] == sorted(means[:6])
    assert all(len(set(values)) == 40 for values in delays.values())  # jittered

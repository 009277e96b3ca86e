"""The alerting layer's two costs: rule evaluation per window, delivery from the SQL outbox.

Run from the repository root, in driftline's virtualenv::

    .venv/bin/python -m benchmarks.alerting --windows 2000 --events 5000

1. Rules: ``--windows`` windows of a 25-feature model (a drift report from real
   detectors, every fourth window drifted) fed to the default rules plus a
   named-feature, a min-features and a data-quality rule (:class:`alerts.engine.RuleEngine`,
   from the stored state form each time, as the service's rule cursor does). Prints
   microseconds per window.
2. Delivery: ``--events`` events queued in the store's outbox (SQLite in a temporary
   directory, as ``make demo``; the service's real path: leases, attempt rows) and
   delivered by one :class:`alerts.delivery.Deliverer` with ``--concurrency`` requests in
   flight to a local HTTP receiver in a child process, ``--rounds`` times, with ``--dead``
   dead events kept in the outbox all along. Prints events/s and the process's RSS after
   each round: flat when nothing grows with the rounds or the dead events.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from alerts.backoff import DeliveryPolicy
from alerts.delivery import Deliverer, Request, UrllibSender
from alerts.engine import RuleEngine, RuleState
from alerts.events import AlertEvent, EventType, event_id
from alerts.outbox import AttemptResult, DeliveryAttempt, OutboxEvent
from alerts.rules import DataQualityRule, FeatureDriftRule, default_rules
from benchmarks.delivery import receiver_process, rss_mb
from detectors.drift import DriftSettings, compare_frames
from detectors.window_result import WindowResult
from monitor.store import Store
from monitor.store.alerting import AlertStore, SqlOutbox, event_row


def windows(count: int, features: int = 25, rows: int = 500) -> list[WindowResult]:
    """``count`` window results of a ``features``-feature model; every fourth one drifted."""
    rng = np.random.default_rng(0)
    names = [f"f{i}" for i in range(features)]
    reference = pd.DataFrame(rng.normal(size=(2000, features)), columns=names)
    reports = []
    for drifted in (False, True):
        current = pd.DataFrame(rng.normal(size=(rows, features)), columns=names)
        if drifted:
            current[names[:8]] += 0.8
        reports.append(compare_frames(reference, current, DriftSettings()))
    return [
        WindowResult(
            model="bench",
            window_start=1_800_000_000.0 + 60 * i,
            window_end=1_800_000_060.0 + 60 * i,
            rows=rows,
            status="ok",
            profile_version=1,
            drift=reports[i % 4 == 3],
        )
        for i in range(count)
    ]


def bench_rules(count: int) -> float:
    """Microseconds per window of the rules, states round-tripped through their JSON form."""
    results = windows(count)
    engine = RuleEngine(
        [
            *default_rules(),
            FeatureDriftRule(feature="f3", name="f3"),
            FeatureDriftRule(min_features=5),
            DataQualityRule(name="dq"),
        ]
    )
    states: dict[tuple[str, str, str], RuleState] = {}
    started = time.perf_counter()
    for result in results:
        loaded = {k: RuleState.from_json(s.to_json()) for k, s in states.items()}
        states, _ = engine.step(loaded, result)
    return (time.perf_counter() - started) / count * 1e6


def _queue(alerts: AlertStore, events: int, target: str, tag: str, now: float) -> None:
    rows = []
    for i in range(events):
        event = AlertEvent(
            id=event_id("bench", "rule", f"{tag}{i}", "i", EventType.DRIFT_DETECTED),
            type=EventType.DRIFT_DETECTED,
            model="bench",
            window_start=now - 60,
            window_end=now,
            severity="warning",
            rule="rule",
            subject=f"{tag}{i}",
            incident="i",
            summary="bench",
            created_at=now,
        )
        rows.append(event_row(event, [target]))
    assert alerts.advance("bench", alerts.cursor("bench"), now + len(tag), {}, [], rows)


def bench_delivery(
    events: int, concurrency: int, *, rounds: int = 1, dead: int = 0
) -> list[tuple[float, float]]:
    """Per round: events per second from the SQLite outbox to a local receiver, RSS in MiB."""
    with receiver_process(200) as url, tempfile.TemporaryDirectory() as directory:
        store = Store.connect(f"sqlite:///{Path(directory) / 'bench.db'}")
        try:
            alerts = AlertStore(store)
            outbox = SqlOutbox(store)
            now = time.time()
            if dead:
                _queue(alerts, dead, "gone", "dead", now)
                for claimed in iter(lambda: outbox.claim("bench", time.time() + 1, 60, 500), []):
                    outbox.record(
                        "bench",
                        [
                            AttemptResult(
                                attempt=DeliveryAttempt(
                                    event_id=e.event_id,
                                    target=e.target,
                                    attempt=1,
                                    started_at=now,
                                    finished_at=now,
                                    outcome="dead",
                                ),
                                state="dead",
                            )
                            for e in claimed
                        ],
                    )
                assert outbox.counts()["dead"] == dead

            def render(queued: OutboxEvent, at: float) -> Request:
                return Request(method="POST", url=url, headers=(), body=queued.payload)

            policy = DeliveryPolicy(
                concurrency=concurrency, batch_size=concurrency * 8, timeout_s=5, lease_s=120
            )
            measured = []
            with Deliverer(
                outbox=outbox, render=render, send=UrllibSender(), policy=policy, owner="bench"
            ) as deliverer:
                for round_ in range(rounds):
                    _queue(alerts, events, "hook", f"r{round_}-", now)
                    started = time.perf_counter()
                    while outbox.counts().get("pending", 0):
                        deliverer.run_once()
                    measured.append((events / (time.perf_counter() - started), rss_mb()))
            assert outbox.counts() == {"pending": 0, "delivered": events * rounds, "dead": dead}
        finally:
            store.close()
    return measured


def main() -> None:
    """Run both measurements and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=2000)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dead", type=int, default=10_000)
    args = parser.parse_args()
    print(f"rules: {bench_rules(args.windows):.0f} us per window (7 rules, 25 features)")
    print(
        f"delivery from the SQLite outbox, concurrency {args.concurrency}, {args.events:,} "
        f"events a round, {args.dead:,} dead events kept:"
    )
    for k, (rate, rss) in enumerate(
        bench_delivery(args.events, args.concurrency, rounds=args.rounds, dead=args.dead), 1
    ):
        print(f"  round {k}: {rate:,.0f} events/s, RSS {rss:.0f} MiB")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

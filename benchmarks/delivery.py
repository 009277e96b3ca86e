"""Webhook delivery throughput and memory: a MemoryOutbox to a local HTTP receiver.

Run from the repository root, in driftline's virtualenv::

    .venv/bin/python -m benchmarks.delivery --events 5000

1. Throughput: ``--events`` pending events delivered by one :class:`~alerts.delivery.Deliverer`
   (``--concurrency`` requests in flight, the default ``urllib`` sender) to the test
   receiver (:mod:`tests.alerts.receiver`, a ``ThreadingHTTPServer`` on 127.0.0.1 that
   answers 200 at once). Prints events/s and the process's peak RSS.
2. Dead events kept: ``--dead`` events to a target that answers 500 and is past the
   maximum age, so one attempt each makes them dead; then ``--rounds`` rounds of
   ``--events`` fresh events delivered (and pruned, as a store's retention would) while
   the dead ones stay. Prints RSS after every round: flat when nothing grows per round,
   and the throughput, which dead events should not slow (claims index pending events).

The receivers run in a child process, so the RSS printed is the deliverer's and its
outbox's alone (and the two do not share a GIL). Numbers depend on the machine; HTTP is
the cost, not the outbox.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.synchronize import Event

from alerts.backoff import DeliveryPolicy
from alerts.delivery import Deliverer, Request, UrllibSender
from alerts.outbox import MemoryOutbox, OutboxEvent
from tests.alerts.receiver import Receiver


def rss_mb() -> float:
    """Returns the process's current resident set size in MiB (Linux ``/proc``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Returns the process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(status: int, ports: multiprocessing.Queue[int], stop: Event) -> None:
    """Runs a receiver answering ``status`` until ``stop`` is set (in a child process)."""
    with Receiver(default_status=status, record_bodies=False) as receiver:
        ports.put(receiver.port)
        while not stop.wait(0.5):
            receiver.requests.clear()  # only its answers matter here


@contextmanager
def receiver_process(status: int) -> Iterator[str]:
    """Starts :func:`serve` in a child process; yields its URL."""
    context = multiprocessing.get_context("spawn")
    ports: multiprocessing.Queue[int] = context.Queue()
    stop = context.Event()
    child = context.Process(target=serve, args=(status, ports, stop), daemon=True)
    child.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
    finally:
        stop.set()
        child.join(timeout=10)


def fill(outbox: MemoryOutbox, n: int, target: str, *, prefix: str, created_at: float) -> None:
    """Enqueues ``n`` events of about 300 bytes for ``target``."""
    for i in range(n):
        event_id = f"{prefix}-{i:07d}"
        payload = (
            b'{"id":"%s","type":"drift.detected","model":"credit-risk","severity":"critical",'
            b'"rule":"feature-drift","summary":"6 of 20 features drifted; top: income (ks=0.31)",'
            b'"window":{"start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z"},'
            b'"details":{}}' % event_id.encode()
        )
        outbox.enqueue(
            OutboxEvent(
                event_id=event_id,
                target=target,
                payload=payload,
                created_at=created_at,
                next_attempt_at=created_at,
            )
        )


def deliver_all(deliverer: Deliverer) -> tuple[int, float]:
    """Runs rounds until nothing is due; returns (attempts, seconds)."""
    attempts = 0
    start = time.perf_counter()
    while True:
        report = deliverer.run_once()
        if report.claimed == 0:
            return attempts, time.perf_counter() - start
        attempts += report.claimed


def main() -> None:
    """Runs both benchmarks and prints their numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--dead", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("alerts.delivery").setLevel(logging.ERROR)  # 10,000 dead events
    with receiver_process(200) as live_url, receiver_process(500) as failing_url:
        urls = {"live": live_url, "failing": failing_url}

        def render(event: OutboxEvent, now: float) -> Request:
            return Request(
                method="POST",
                url=urls[event.target],
                headers=[
                    ("Content-Type", "application/json"),
                    ("X-Driftline-Event-Id", event.event_id),
                ],
                body=event.payload,
            )

        outbox = MemoryOutbox()
        policy = DeliveryPolicy(
            timeout_s=5, lease_s=120, batch_size=64, concurrency=args.concurrency, max_age_s=3600
        )
        with Deliverer(
            outbox=outbox, render=render, send=UrllibSender(proxies={}), policy=policy
        ) as deliverer:
            print(f"start: RSS {rss_mb():.1f} MiB")
            fill(outbox, args.events, "live", prefix="warm", created_at=time.time())
            sent, seconds = deliver_all(deliverer)
            assert outbox.counts()["delivered"] == args.events
            print(
                f"throughput: {sent} events in {seconds:.2f} s = {sent / seconds:,.0f} events/s "
                f"(concurrency {args.concurrency}); peak RSS {peak_rss_mb():.1f} MiB"
            )
            outbox.prune_delivered()

            # Older than max_age_s: their one failed attempt makes them dead.
            fill(outbox, args.dead, "failing", prefix="dead", created_at=time.time() - 7200)
            attempts, seconds = deliver_all(deliverer)
            counts = outbox.counts()
            assert counts["dead"] == args.dead, counts
            print(
                f"{args.dead} dead events made in {seconds:.2f} s ({attempts} attempts); "
                f"RSS {rss_mb():.1f} MiB"
            )
            for round_ in range(1, args.rounds + 1):
                fill(outbox, args.events, "live", prefix=f"r{round_}", created_at=time.time())
                sent, seconds = deliver_all(deliverer)
                pruned = outbox.prune_delivered()
                assert pruned == args.events
                print(
                    f"round {round_}: {sent} events in {seconds:.2f} s = "
                    f"{sent / seconds:,.0f} events/s with {outbox.counts()['dead']} dead kept; "
                    f"RSS {rss_mb():.1f} MiB, peak {peak_rss_mb():.1f} MiB"
                )


if __name__ == "__main__":
    main()

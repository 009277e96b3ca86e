"""Webhook delivery from the outbox to a real local HTTP receiver.

The receiver (:mod:`tests.alerts.receiver`) is a real HTTP server on 127.0.0.1; the
deliverers use the default ``urllib`` sender. Scheduling runs on an injected clock so
that retries are due when a test says so, not after real backoff delays.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping

import pytest

from alerts.backoff import DeliveryPolicy
from alerts.delivery import Deliverer, DeliveryError, Request, UrllibSender
from alerts.outbox import DeliveryAttempt, MemoryOutbox, Outbox, OutboxError, OutboxEvent, Outcome
from tests.alerts.receiver import Receiver, run_deliverers

SECRET = b"s3cret-signing-key"
T0 = 1_700_000_000.0


class Clock:
    """A settable clock (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Metrics:
    """Records what a Deliverer reports (thread-safe: two deliverers may share one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.outcomes: Counter[tuple[str, str]] = Counter()
        self.backlogs: list[tuple[int, int]] = []

    def delivered(self, target: str, outcome: Outcome) -> None:
        with self._lock:
            self.outcomes[target, outcome] += 1

    def backlog(self, pending: int, dead: int) -> None:
        with self._lock:
            self.backlogs.append((pending, dead))

    def count(self, outcome: str) -> int:
        return sum(n for (_, o), n in self.outcomes.items() if o == outcome)


def sign(timestamp: int, body: bytes, secret: bytes = SECRET) -> str:
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(headers: Mapping[str, str], body: bytes) -> bool:
    """The receiver's check of ``X-Driftline-Signature``."""
    parts = dict(p.split("=", 1) for p in headers.get("x-driftline-signature", "").split(","))
    if "t" not in parts or "v1" not in parts:
        return False
    return hmac.compare_digest(sign(int(parts["t"]), body), headers["x-driftline-signature"])


class Renderer:
    """A stand-in for alerts.formats: the driftline format's headers, signed per attempt."""

    def __init__(self, urls: Mapping[str, str], secrets: Mapping[str, bytes] | None = None):
        self.urls = urls
        self.secrets = secrets or {}

    def __call__(self, event: OutboxEvent, now: float) -> Request:
        secret = self.secrets.get(event.target, SECRET)
        return Request(
            method="POST",
            url=self.urls[event.target],
            headers=[
                ("Content-Type", "application/json"),
                ("X-Driftline-Event-Id", event.event_id),
                ("X-Driftline-Signature", sign(int(now), event.payload, secret)),
            ],
            body=event.payload,
        )


def fill(
    outbox: Outbox, n: int, *, targets: tuple[str, ...] = ("hook",), at: float = T0
) -> list[str]:
    ids = [f"evt-{i:05d}" for i in range(n)]
    for event_id in ids:
        for target in targets:
            payload = b'{"id":"%s","type":"drift.detected"}' % event_id.encode()
            outbox.enqueue(
                OutboxEvent(
                    event_id=event_id,
                    target=target,
                    payload=payload,
                    created_at=at,
                    next_attempt_at=at,
                )
            )
    return ids


def drain(deliverer: Deliverer, clock: Clock, *, rounds: int = 20, step_s: float = 400) -> None:
    """Runs rounds until nothing is pending, moving the clock past every backoff."""
    for _ in range(rounds):
        deliverer.run_once()
        if deliverer.outbox.counts()["pending"] == 0:
            return
        clock.advance(step_s)
    raise AssertionError(f"still pending after {rounds} rounds: {deliverer.outbox.counts()}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(verify=verify) as running:
        yield running


def make(
    outbox: Outbox, receiver: Receiver, clock: Clock, metrics: Metrics, **policy: float
) -> Deliverer:
    settings: dict[str, float] = {"timeout_s": 2, "lease_s": 60, "batch_size": 50}
    settings.update(policy)
    return Deliverer(
        outbox=outbox,
        render=Renderer({"hook": receiver.url}),
        send=UrllibSender(proxies={}),
        policy=DeliveryPolicy(**settings),  # type: ignore[arg-type]
        clock=clock,
        metrics=metrics,
    )


# -- MemoryOutbox semantics (no HTTP) ------------------------------------------------------------


def attempt_of(event: OutboxEvent, outcome: Outcome = "delivered") -> DeliveryAttempt:
    return DeliveryAttempt(
        event_id=event.event_id,
        target=event.target,
        attempt=event.attempts + 1,
        started_at=T0,
        finished_at=T0,
        outcome=outcome,
    )


def test_an_event_fans_out_to_targets_delivered_independently() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 1, targets=("a", "b"))
    assert not outbox.enqueue(
        OutboxEvent(
            event_id="evt-00000", target="a", payload=b"", created_at=T0, next_attempt_at=T0
        )
    )
    a, b = sorted(outbox.claim("w", T0, 10, 10), key=lambda e: e.target)
    assert outbox.record_success(a.event_id, a.target, "w", attempt_of(a))
    assert outbox.record_failure(b.event_id, b.target, "w", attempt_of(b, "timeout"), T0 + 5)
    assert outbox.counts() == {"pending": 1, "delivered": 1, "dead": 0}
    assert outbox.claim("w", T0 + 4, 10, 10) == []  # not due yet
    assert [e.key for e in outbox.claim("w", T0 + 5, 10, 10)] == [("evt-00000", "b")]


def test_a_leased_event_is_held_by_one_claimer_until_its_lease_expires() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 3)
    first = outbox.claim("a", T0, 30, 10)
    assert [e.lease_owner for e in first] == ["a"] * 3
    assert outbox.claim("b", T0 + 29.9, 30, 10) == []
    taken = outbox.claim("b", T0 + 30, 30, 10)
    assert len(taken) == 3
    # The stale owner's late outcomes are ignored; the new owner's count.
    for event in first:
        assert not outbox.record_success(event.event_id, event.target, "a", attempt_of(event))
        assert not outbox.record_failure(event.event_id, event.target, "a", attempt_of(event), T0)
        assert not outbox.record_dead(event.event_id, event.target, "a", attempt_of(event))
    for event in taken:
        assert outbox.record_success(event.event_id, event.target, "b", attempt_of(event))
    assert outbox.counts() == {"pending": 0, "delivered": 3, "dead": 0}


def test_an_expired_lease_nobody_took_over_still_records() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 1)
    (event,) = outbox.claim("a", T0, 30, 10)
    assert outbox.record_success(event.event_id, event.target, "a", attempt_of(event))
    assert not outbox.record_success(event.event_id, event.target, "a", attempt_of(event))


def test_concurrent_claims_never_share_an_event() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 2000)
    claimed: list[list[str]] = [[] for _ in range(8)]
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        while batch := outbox.claim(f"w{i}", T0, 30, 7):
            claimed[i].extend(e.event_id for e in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [event_id for ids in claimed for event_id in ids]
    assert len(every) == len(set(every)) == 2000


@pytest.mark.parametrize(
    ("args", "name"),
    [(("", T0, 1, 1), "owner"), (("w", T0, 0, 1), "lease_s"), (("w", T0, 1, 0), "limit")],
)
def test_invalid_claims_name_the_parameter(args: tuple[str, float, float, int], name: str) -> None:
    with pytest.raises(OutboxError) as info:
        MemoryOutbox().claim(*args)
    assert info.value.name == name


def test_redeliver_only_revives_dead_events() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 1)
    assert not outbox.redeliver("evt-00000", "hook", T0)
    assert not outbox.redeliver("nope", "hook", T0)


def test_an_event_whose_lease_would_expire_mid_request_is_not_sent() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 1)
    clock = Clock()
    sent: list[str] = []

    def send(request: object, timeout_s: float) -> int:
        sent.append("x")
        return 200

    deliverer = Deliverer(
        outbox=outbox,
        render=Renderer({"hook": "http://unused"}),
        send=send,
        policy=DeliveryPolicy(timeout_s=5, lease_s=10, batch_size=1, concurrency=1),
        clock=clock,
    )
    with deliverer:
        # A claim, then a clock that jumps to within timeout_s of the lease's end.
        original_claim = outbox.claim

        def claim_then_stall(
            owner: str, now: float, lease_s: float, limit: int
        ) -> list[OutboxEvent]:
            batch = original_claim(owner, now, lease_s, limit)
            clock.advance(6)
            return batch

        outbox.claim = claim_then_stall  # type: ignore[method-assign]
        report = deliverer.run_once()
    assert report.skipped == 1
    assert sent == []
    assert outbox.counts()["pending"] == 1
    with pytest.raises(DeliveryError, match="closed"):
        deliverer.run_once()


# -- Against the real receiver -------------------------------------------------------------------


@pytest.mark.integration
def test_500s_then_recovery_deliver_every_event_once(receiver: Receiver) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    ids = fill(outbox, 30)
    receiver.script(statuses=[500] * 25)
    with make(outbox, receiver, clock, metrics) as deliverer:
        drain(deliverer, clock)
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
    assert len(receiver.requests) == 55
    assert metrics.outcomes == {("hook", "http_error"): 25, ("hook", "delivered"): 30}
    assert metrics.backlogs[-1] == (0, 0)
    assert outbox.counts() == {"pending": 0, "delivered": 30, "dead": 0}
    retried = [outbox.get(i, "hook") for i in ids]
    assert sum(e.attempts for e in retried if e is not None) == 55


@pytest.mark.integration
def test_timeouts_are_retried(receiver: Receiver) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    ids = fill(outbox, 6)
    receiver.script(delays=[1.5, 1.5])  # the first two requests answer after the timeout
    with make(outbox, receiver, clock, metrics, timeout_s=0.2, lease_s=10) as deliverer:
        first = deliverer.run_once()
        assert (first.delivered, first.retried) == (4, 2)
        assert metrics.count("timeout") == 2
        timed_out = [e for i in ids if (e := outbox.get(i, "hook")) and e.state == "pending"]
        assert all(e.last_error == "TimeoutError: timed out" for e in timed_out)
        clock.advance(400)
        drain(deliverer, clock)
    # At least once: a receiver that answered too late may have accepted a request too.
    assert set(receiver.accepted) == set(ids)
    assert outbox.counts()["delivered"] == 6
    assert metrics.count("delivered") == 6


@pytest.mark.integration
def test_refused_connections_are_retried_until_the_receiver_listens() -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    ids = fill(outbox, 10)
    receiver = Receiver()
    receiver.start()
    receiver.stop()  # its port is known and nothing listens on it
    with make(outbox, receiver, clock, metrics) as deliverer:
        report = deliverer.run_once()
        assert report.retried == 10
        assert metrics.count("connection_error") == 10
        event = outbox.get(ids[0], "hook")
        assert event is not None
        assert event.last_error == "ConnectionRefusedError: Connection refused"
        with receiver:
            clock.advance(400)
            drain(deliverer, clock)
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))


@pytest.mark.integration
def test_events_past_max_age_die_and_redeliver_brings_them_back(receiver: Receiver) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    ids = fill(outbox, 5)
    receiver.default_status = 502
    with make(outbox, receiver, clock, metrics, max_age_s=600) as deliverer:
        assert deliverer.run_once().retried == 5
        clock.advance(598)  # past the first backoff (at most 1 s)
        assert deliverer.run_once().retried == 5  # 598 s old: still retried
        clock.advance(2)  # past the second backoff (at most 2 s), 600 s old
        assert deliverer.run_once().dead == 5
        assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 5}
        assert metrics.backlogs[-1] == (0, 5)
        assert metrics.count("dead") == 5
        assert metrics.count("http_error") == 10
        clock.advance(3600)
        assert deliverer.run_once().claimed == 0  # dead events are kept, not retried

        receiver.default_status = 200
        assert all(outbox.redeliver(i, "hook", clock()) for i in ids)
        assert not outbox.redeliver(ids[0], "hook", clock())
        assert deliverer.run_once().delivered == 5
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
    for event_id in ids:
        event = outbox.get(event_id, "hook")
        assert event is not None
        assert (event.state, event.attempts) == ("delivered", 4)


@pytest.mark.integration
def test_two_deliverers_on_one_outbox_deliver_each_event_exactly_once(receiver: Receiver) -> None:
    outbox, metrics = MemoryOutbox(), Metrics()
    ids = fill(outbox, 300, at=time.time())
    policy = DeliveryPolicy(timeout_s=2, lease_s=60, batch_size=8, concurrency=4, idle_sleep_s=0.02)
    deliverers = [
        Deliverer(
            outbox=outbox,
            render=Renderer({"hook": receiver.url}),
            send=UrllibSender(proxies={}),
            policy=policy,
            owner=owner,
            metrics=metrics,
        )
        for owner in ("one", "two")
    ]
    run_deliverers(deliverers, outbox, len(ids))
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
    assert len(receiver.requests) == len(ids)
    assert metrics.outcomes == {("hook", "delivered"): len(ids)}


@pytest.mark.integration
def test_a_second_owner_takes_over_a_crashed_owners_lease(receiver: Receiver) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    ids = fill(outbox, 10)
    crashed = outbox.claim("crashed", clock(), 60, 100)  # claims, then never records
    assert len(crashed) == 10
    with make(outbox, receiver, clock, metrics) as successor:
        assert successor.run_once().claimed == 0  # the lease holds
        clock.advance(60)
        assert successor.run_once().delivered == 10
    for event in crashed:
        late = attempt_of(event, "timeout")
        assert not outbox.record_failure(event.event_id, event.target, "crashed", late, clock())
        assert not outbox.record_success(event.event_id, event.target, "crashed", late)
    assert outbox.counts() == {"pending": 0, "delivered": 10, "dead": 0}
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))


@pytest.mark.integration
def test_requests_in_flight_never_exceed_the_concurrency() -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    fill(outbox, 24)
    with Receiver(default_delay_s=0.1) as receiver:
        with make(outbox, receiver, clock, metrics, concurrency=4, batch_size=24) as deliverer:
            assert deliverer.run_once().delivered == 24
        assert 2 <= receiver.max_in_flight <= 4


@pytest.mark.integration
def test_redirects_are_not_followed(receiver: Receiver) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    fill(outbox, 1)
    receiver.script(statuses=[302])
    with make(outbox, receiver, clock, metrics) as deliverer:
        report = deliverer.run_once()
    assert report.retried == 1
    assert [r.path for r in receiver.requests] == ["/hook"]
    event = outbox.get("evt-00000", "hook")
    assert event is not None
    assert event.last_error == "HTTP 302"


@pytest.mark.integration
def test_a_bad_signature_is_an_http_error_and_no_secret_is_logged(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    outbox, clock, metrics = MemoryOutbox(), Clock(), Metrics()
    fill(outbox, 1, targets=("good", "bad"))
    token_url = receiver.url + "?token=url-secret-token"
    render = Renderer({"good": receiver.url, "bad": token_url}, {"bad": b"wrong-secret"})
    with (
        caplog.at_level(logging.DEBUG, logger="alerts.delivery"),
        Deliverer(
            outbox=outbox,
            render=render,
            send=UrllibSender(proxies={}),
            policy=DeliveryPolicy(timeout_s=2, lease_s=60),
            clock=clock,
            metrics=metrics,
        ) as deliverer,
    ):
        report = deliverer.run_once()
    assert (report.delivered, report.retried) == (1, 1)
    assert metrics.outcomes == {("good", "delivered"): 1, ("bad", "http_error"): 1}
    assert sorted(r.status for r in receiver.requests) == [200, 401]
    assert "HTTP 401" in caplog.text
    for secret in ("url-secret-token", "wrong-secret", "v1=", "Signature"):
        assert secret not in caplog.text


def test_run_forever_survives_a_store_outage_and_pauses_when_idle() -> None:
    outbox = MemoryOutbox()
    fill(outbox, 3)
    stop = threading.Event()
    failures = [RuntimeError("database is down")]
    pauses: list[float] = []
    claim = outbox.claim

    def flaky_claim(owner: str, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        if failures:
            raise failures.pop()
        return claim(owner, now, lease_s, limit)

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if outbox.counts()["delivered"] == 3:
            stop.set()

    outbox.claim = flaky_claim  # type: ignore[method-assign]
    with Deliverer(
        outbox=outbox,
        render=Renderer({"hook": "http://unused"}),
        send=lambda request, timeout_s: 204,
        policy=DeliveryPolicy(timeout_s=1, lease_s=10, idle_sleep_s=0.25),
        clock=Clock(),
        sleep=sleep,
    ) as deliverer:
        deliverer.run_forever(stop)
    assert outbox.counts()["delivered"] == 3
    assert pauses == [0.25, 0.25]  # after the outage, then after the batch that emptied it

"""Alerting tables: the rules' compare-and-set cursor, and the SQL outbox's delivery contract.

Every test runs on SQLite and on a real PostgreSQL (see ``conftest.py``). The outbox
scenarios are those ``tests/alerts/test_delivery.py`` checks of ``MemoryOutbox``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.engine import URL

from alerts.backoff import DeliveryPolicy
from alerts.delivery import Deliverer, UrllibSender
from alerts.events import AlertEvent, EventType, event_from_json, event_id
from alerts.formats import HttpRequest, render_request
from alerts.outbox import AttemptResult, DeliveryAttempt, Outbox, OutboxError, OutboxEvent, Outcome
from alerts.signing import SIGNATURE_HEADER, SignatureError, verify_driftline_signature
from alerts.targets import WebhookTarget
from monitor.store import (
    AlertStore,
    EventRow,
    IncidentRow,
    SqlOutbox,
    Store,
    create_engine,
    event_row,
    incident_key,
    migrate,
)
from monitor.store.models import AlertEventRecord, AlertOutbox, Base
from tests.alerts.receiver import Receiver, run_deliverers
from tests.store._clock import FakeClock

THREADS = 8
ROUNDS = 5
SECRET = "s3cret-signing-key"
ALERT_TABLES = {
    "alert_cursors",
    "alert_rule_states",
    "alert_incidents",
    "alert_events",
    "alert_outbox",
    "alert_delivery_attempts",
}


def alert(n: int, *, at: float, model: str = "credit-risk", rule: str = "psi") -> AlertEvent:
    """The ``n``-th drift event of ``rule`` (a subject per ``n``), created at ``at``."""
    subject = f"feature_{n}"
    incident = "2027-01-15T08:00:00Z"
    return AlertEvent(
        id=event_id(model, rule, subject, incident, EventType.DRIFT_DETECTED),
        type=EventType.DRIFT_DETECTED,
        model=model,
        window_start=at - 60,
        window_end=at,
        severity="warning",
        rule=rule,
        subject=subject,
        incident=incident,
        summary=f"{subject} drifted",
        details={"psi": 0.3},
        created_at=at,
    )


def fill(outbox: SqlOutbox, n: int, *, at: float, targets: Sequence[str] = ("hook",)) -> list[str]:
    """Enqueues ``n`` events for each target, due at ``at``; returns their ids."""
    ids = []
    for i in range(n):
        stored = event_row(alert(i, at=at), ())
        for target in targets:
            assert outbox.enqueue(
                OutboxEvent(
                    event_id=stored.event_id,
                    target=target,
                    payload=stored.payload,
                    created_at=at,
                    next_attempt_at=at,
                )
            )
        ids.append(stored.event_id)
    return ids


def attempt_of(event: OutboxEvent, outcome: Outcome = "delivered") -> DeliveryAttempt:
    """The next attempt at ``event``, with ``outcome``."""
    return DeliveryAttempt(
        event_id=event.event_id,
        target=event.target,
        attempt=event.attempts + 1,
        started_at=event.next_attempt_at,
        finished_at=event.next_attempt_at + 0.5,
        outcome=outcome,
        status_code=200 if outcome == "delivered" else None,
        error=None if outcome == "delivered" else outcome,
    )


def incident(model: str = "credit-risk", rule: str = "psi", **kw: Any) -> IncidentRow:
    """A firing incident of ``rule`` for ``model``; ``kw`` overrides fields."""
    fields: dict[str, Any] = {
        "id": incident_key(model, rule, "", "2027-01-15T08:00:00Z"),
        "model": model,
        "rule": rule,
        "subject": "",
        "severity": "warning",
        "status": "firing",
        "started_window_start": 0.0,
        "last_window_end": 60.0,
    }
    fields.update(kw)
    return IncidentRow(**fields)


def count(store: Store, model: type[Base]) -> int:
    """The number of rows in ``model``'s table."""
    with store.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(model)) or 0)


def run_threads(target: Callable[[int], None], n: int = THREADS) -> None:
    """Runs ``target(i)`` in ``n`` threads started together; re-raises their errors."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            target(i)
        except BaseException as error:  # reported by the test thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.fixture
def alerts(store: Store) -> AlertStore:
    """The alerting tables of the test's store."""
    return AlertStore(store)


@pytest.fixture
def outbox(store: Store) -> SqlOutbox:
    """The SQL outbox of the test's store."""
    return SqlOutbox(store)


# --- schema ----------------------------------------------------------------------------------


def test_migration_creates_the_alert_tables_with_their_indexes_and_checks(
    database_url: URL,
) -> None:
    # test_migrations compares columns and types; CHECKs and index names are checked here.
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        inspector = sqlalchemy.inspect(engine)
        assert set(inspector.get_table_names()) >= ALERT_TABLES
        found = {
            table: (
                {index["name"] for index in inspector.get_indexes(table)},
                {check["name"] for check in inspector.get_check_constraints(table)},
            )
            for table in ALERT_TABLES
        }
    finally:
        engine.dispose()
    expected = {
        name: (
            {index.name for index in table.indexes},
            {c.name for c in table.constraints if isinstance(c, sqlalchemy.CheckConstraint)},
        )
        for name, table in Base.metadata.tables.items()
        if name in ALERT_TABLES
    }
    assert found == expected


# --- the outbox contract (MemoryOutbox's scenarios) ------------------------------------------


def test_an_event_fans_out_to_targets_delivered_independently(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    assert isinstance(outbox, Outbox)
    t0 = clock()
    (first,) = fill(outbox, 1, at=t0, targets=("a", "b"))
    again = outbox.get(first, "a")
    assert again is not None
    assert not outbox.enqueue(replace_lease(again))
    a, b = sorted(outbox.claim("w", t0, 10, 10), key=lambda e: e.target)
    assert event_from_json(a.payload).id == first
    assert outbox.record_success(a.event_id, a.target, "w", attempt_of(a))
    assert outbox.record_failure(b.event_id, b.target, "w", attempt_of(b, "timeout"), t0 + 5)
    assert outbox.counts() == {"pending": 1, "delivered": 1, "dead": 0}
    assert outbox.claim("w", t0 + 4, 10, 10) == []  # not due yet
    assert [e.key for e in outbox.claim("w", t0 + 5, 10, 10)] == [(first, "b")]


def replace_lease(event: OutboxEvent) -> OutboxEvent:
    """``event`` as a new, unleased, pending event (to enqueue the same key again)."""
    return OutboxEvent(
        event_id=event.event_id,
        target=event.target,
        payload=event.payload,
        created_at=event.created_at,
        next_attempt_at=event.next_attempt_at,
    )


def test_a_leased_event_is_held_by_one_claimer_until_its_lease_expires(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    t0 = clock()
    fill(outbox, 3, at=t0)
    first = outbox.claim("a", t0, 30, 10)
    assert [e.lease_owner for e in first] == ["a"] * 3
    assert [e.lease_expires_at for e in first] == [t0 + 30] * 3
    assert outbox.claim("b", t0 + 29.9, 30, 10) == []
    taken = outbox.claim("b", t0 + 30, 30, 10)
    assert len(taken) == 3
    # The stale owner's late outcomes are ignored (and leave no attempt); the new owner's count.
    for event in first:
        assert not outbox.record_success(event.event_id, event.target, "a", attempt_of(event))
        assert not outbox.record_failure(event.event_id, event.target, "a", attempt_of(event), t0)
        assert not outbox.record_dead(event.event_id, event.target, "a", attempt_of(event))
    assert all(d.attempts == () for d in AlertStore(outbox.store).events())
    for event in taken:
        assert outbox.record_success(event.event_id, event.target, "b", attempt_of(event))
    assert outbox.counts() == {"pending": 0, "delivered": 3, "dead": 0}


def test_a_batch_of_outcomes_is_recorded_in_one_call_by_the_record_rules(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    t0 = clock()
    fill(outbox, 4, at=t0)
    first = outbox.claim("a", t0, 30, 10)
    taken = outbox.claim("b", t0 + 30, 30, 2)  # b took the first two over; a keeps the rest
    assert [e.key for e in taken] == [e.key for e in first[:2]]
    results = [
        AttemptResult(attempt=attempt_of(first[0]), state="delivered"),
        AttemptResult(attempt=attempt_of(first[1], "timeout"), state="pending", next_attempt_at=t0),
        AttemptResult(attempt=attempt_of(first[2]), state="delivered"),
        AttemptResult(
            attempt=attempt_of(first[3], "http_error"), state="pending", next_attempt_at=t0 + 99
        ),
    ]
    assert outbox.record("a", results) == [False, False, True, True]
    assert outbox.counts() == {"pending": 3, "delivered": 1, "dead": 0}
    retried = outbox.get(first[3].event_id, first[3].target)
    assert retried is not None
    assert (retried.attempts, retried.next_attempt_at, retried.lease_owner) == (1, t0 + 99, None)
    # Only the recorded outcomes left an attempt row.
    attempts = [a for d in AlertStore(outbox.store).events() for a in d.attempts]
    assert sorted(a.event_id for a in attempts) == sorted([first[2].event_id, first[3].event_id])
    assert outbox.record("b", []) == []


def test_an_expired_lease_nobody_took_over_still_records(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    t0 = clock()
    fill(outbox, 1, at=t0)
    (event,) = outbox.claim("a", t0, 30, 10)
    assert outbox.record_success(event.event_id, event.target, "a", attempt_of(event))
    assert not outbox.record_success(event.event_id, event.target, "a", attempt_of(event))


def test_claims_come_earliest_first_and_up_to_the_limit(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    t0 = clock()
    late = fill(outbox, 1, at=t0 + 1)
    early = event_row(alert(7, at=t0, rule="other"), ())
    assert outbox.enqueue(
        OutboxEvent(
            event_id=early.event_id,
            target="hook",
            payload=early.payload,
            created_at=t0,
            next_attempt_at=t0,
        )
    )
    assert [e.event_id for e in outbox.claim("w", t0 + 1, 10, 1)] == [early.event_id]
    assert [e.event_id for e in outbox.claim("w", t0 + 1, 10, 5)] == late


def test_record_dead_then_redeliver_brings_an_event_back(
    outbox: SqlOutbox, alerts: AlertStore, clock: FakeClock
) -> None:
    t0 = clock()
    (event_id_,) = fill(outbox, 1, at=t0)
    assert not outbox.redeliver(event_id_, "hook", t0)  # pending, not dead
    assert not outbox.redeliver("nope", "hook", t0)
    (event,) = outbox.claim("w", t0, 30, 10)
    assert outbox.record_dead(event.event_id, event.target, "w", attempt_of(event, "dead"))
    assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 1}
    assert outbox.claim("w", t0 + 3600, 30, 10) == []  # dead events are kept, not retried
    assert not outbox.record_success(event.event_id, event.target, "w", attempt_of(event))

    assert outbox.redeliver(event_id_, "hook", t0 + 100)
    assert not outbox.redeliver(event_id_, "hook", t0 + 100)
    assert outbox.counts() == {"pending": 1, "delivered": 0, "dead": 0}
    assert outbox.claim("w", t0 + 99, 30, 10) == []
    (again,) = outbox.claim("w", t0 + 100, 30, 10)
    assert (again.attempts, again.last_error) == (1, "dead")
    assert outbox.record_success(again.event_id, again.target, "w", attempt_of(again))

    stored = outbox.get(event_id_, "hook")
    assert stored is not None
    assert (stored.state, stored.attempts, stored.lease_owner) == ("delivered", 2, None)
    (delivery,) = alerts.events()
    assert [(a.attempt, a.outcome) for a in delivery.attempts] == [(1, "dead"), (2, "delivered")]
    assert [(o.target, o.state, o.attempts) for o in delivery.outbox] == [("hook", "delivered", 2)]


@pytest.mark.parametrize(
    ("args", "name"),
    [(("", 0.0, 1, 1), "owner"), (("w", 0.0, 0, 1), "lease_s"), (("w", 0.0, 1, 0), "limit")],
)
def test_invalid_claims_name_the_parameter(
    outbox: SqlOutbox, args: tuple[str, float, float, int], name: str
) -> None:
    with pytest.raises(OutboxError) as info:
        outbox.claim(*args)
    assert info.value.name == name


def test_enqueue_refuses_what_is_not_a_new_stored_alert_event(
    outbox: SqlOutbox, clock: FakeClock
) -> None:
    stored = event_row(alert(0, at=clock()), ())
    new: dict[str, Any] = {
        "event_id": stored.event_id,
        "target": "hook",
        "payload": stored.payload,
        "created_at": clock(),
        "next_attempt_at": clock(),
    }
    bad: list[dict[str, Any]] = [
        {"payload": b'{"id": "x"}'},
        {"event_id": "another-id"},
        {"state": "dead"},
        {"lease_owner": "w", "lease_expires_at": clock() + 1},
    ]
    for changes in bad:
        with pytest.raises(OutboxError):
            outbox.enqueue(OutboxEvent(**(new | changes)))
    assert outbox.counts() == {"pending": 0, "delivered": 0, "dead": 0}


def test_concurrent_claims_never_share_an_event(
    store: Store, outbox: SqlOutbox, clock: FakeClock
) -> None:
    t0 = clock()
    events = [event_row(alert(i, at=t0), ("hook",)) for i in range(400)]
    assert AlertStore(store).advance("credit-risk", None, 0.0, {}, [], events)
    claimed: list[list[str]] = [[] for _ in range(THREADS)]

    def worker(i: int) -> None:
        while batch := outbox.claim(f"w{i}", t0, 30, 7):
            claimed[i].extend(e.event_id for e in batch)

    run_threads(worker)
    every = [event_id for ids in claimed for event_id in ids]
    assert len(every) == len(set(every)) == 400
    assert sum(1 for ids in claimed if ids) > 1  # the claimers did run side by side


# --- advance: the rules' compare-and-set cursor ----------------------------------------------


def test_advance_moves_the_cursor_only_from_the_expected_position(
    alerts: AlertStore, clock: FakeClock
) -> None:
    state = {"model": "credit-risk", "rule": "psi", "subject": "", "status": "firing"}
    key = ("credit-risk", "psi", "")
    assert alerts.cursor("credit-risk") is None
    assert alerts.advance("credit-risk", None, 0.0, {key: state}, [incident()], [])
    assert alerts.cursor("credit-risk") == 0.0
    assert alerts.states("credit-risk") == {key: state}

    clock.advance(10)
    assert not alerts.advance("credit-risk", None, 60.0, {key: {**state, "status": "ok"}}, [], [])
    assert not alerts.advance("credit-risk", 60.0, 120.0, {}, [], [])
    assert alerts.cursor("credit-risk") == 0.0
    assert alerts.states("credit-risk") == {key: state}

    resolved = incident(status="resolved", resolved_window_end=120.0, reason="clean_windows")
    assert alerts.advance(
        "credit-risk", 0.0, 60.0, {key: {**state, "status": "ok"}}, [resolved], []
    )
    assert alerts.cursor("credit-risk") == 60.0
    assert alerts.states("credit-risk")[key]["status"] == "ok"
    (stored,) = alerts.incidents()
    assert (stored.status, stored.reason, stored.resolved_window_end) == (
        "resolved",
        "clean_windows",
        120.0,
    )
    # Rewriting an incident keeps its first created_at.
    assert (stored.created_at, stored.updated_at) == (clock() - 10, clock())
    assert alerts.cursor("other-model") is None


def test_advance_refuses_rows_of_another_model(alerts: AlertStore, clock: FakeClock) -> None:
    other = event_row(alert(0, at=clock(), model="other"), ("hook",))
    with pytest.raises(ValueError, match="other"):
        alerts.advance("credit-risk", None, 0.0, {}, [], [other])
    with pytest.raises(ValueError, match="other"):
        alerts.advance("credit-risk", None, 0.0, {}, [incident(model="other")], [])
    with pytest.raises(ValueError, match="other"):
        alerts.advance("credit-risk", None, 0.0, {("other", "psi", ""): {}}, [], [])
    assert alerts.cursor("credit-risk") is None


def race_advance(
    alerts: AlertStore,
    expected: float | None,
    position: float,
    states: Mapping[tuple[str, str, str], dict[str, Any]],
    events: Sequence[EventRow],
) -> list[int]:
    """Lets every thread advance from ``expected`` to ``position`` at once; returns the winners."""
    won: list[int] = []

    def advance(i: int) -> None:
        if alerts.advance("credit-risk", expected, position, states, [incident()], events):
            won.append(i)

    run_threads(advance)
    return won


def test_concurrent_advances_from_one_position_have_exactly_one_winner(
    store: Store, alerts: AlertStore, clock: FakeClock
) -> None:
    expected: float | None = None
    for round_ in range(ROUNDS):
        position = 60.0 * round_
        events = [
            event_row(alert(i, at=clock(), rule=f"rule-{round_}"), ("a", "b")) for i in range(5)
        ]
        states = {("credit-risk", "psi", ""): {"round": round_}}
        assert len(race_advance(alerts, expected, position, states, events)) == 1
        assert alerts.cursor("credit-risk") == position
        expected = position
    assert count(store, AlertEventRecord) == 5 * ROUNDS
    assert count(store, AlertOutbox) == 10 * ROUNDS
    assert SqlOutbox(store).counts() == {"pending": 10 * ROUNDS, "delivered": 0, "dead": 0}


@pytest.fixture
def fail_outbox_insert(store: Store) -> Iterator[list[int]]:
    """Makes the next INSERT into alert_outbox fail; yields the list of failures made."""
    failures: list[int] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not failures and statement.lstrip().upper().startswith("INSERT INTO ALERT_OUTBOX"):
            failures.append(1)
            raise RuntimeError("simulated crash mid-transaction")

    sqlalchemy.event.listen(store.engine, "before_cursor_execute", before)
    yield failures
    sqlalchemy.event.remove(store.engine, "before_cursor_execute", before)


def test_a_retried_advance_inserts_nothing_twice(
    store: Store, alerts: AlertStore, clock: FakeClock, fail_outbox_insert: list[int]
) -> None:
    events = [event_row(alert(i, at=clock()), ("a", "b")) for i in range(3)]
    states = {("credit-risk", "psi", ""): {"status": "firing"}}
    with pytest.raises(RuntimeError, match="simulated"):
        alerts.advance("credit-risk", None, 0.0, states, [incident()], events)
    assert fail_outbox_insert == [1]
    # The failed transaction left nothing behind: not the cursor, the events or the states.
    assert alerts.cursor("credit-risk") is None
    assert (count(store, AlertEventRecord), alerts.states("credit-risk")) == (0, {})

    assert alerts.advance("credit-risk", None, 0.0, states, [incident()], events)
    # Committed, but the caller did not hear back: the same call again is refused.
    assert not alerts.advance("credit-risk", None, 0.0, states, [incident()], events)
    # A caller that re-emits the same events from the new position queues none twice.
    repeat = [*events, event_row(alert(3, at=clock()), ("a",))]
    assert alerts.advance("credit-risk", 0.0, 60.0, states, [incident()], repeat)
    assert count(store, AlertEventRecord) == 4
    assert count(store, AlertOutbox) == 7
    assert len(alerts.incidents()) == 1


# --- operator reads --------------------------------------------------------------------------


def test_incident_and_event_reads(alerts: AlertStore, clock: FakeClock) -> None:
    firing = [
        incident(rule="psi", severity="warning"),
        incident(rule="psi", severity="warning", id="second"),
        incident(rule="ks", severity="critical", id="third"),
    ]
    events = [event_row(alert(i, at=clock() + i), ("a", "b")) for i in range(3)]
    assert alerts.advance("credit-risk", None, 0.0, {}, firing, events)
    clock.advance(5)
    other = [incident(model="fraud", status="resolved", reason="model_replaced", id="fourth")]
    other_event = event_row(alert(0, at=clock() + 100, model="fraud"), ())
    assert alerts.advance("fraud", None, 0.0, {}, other, [other_event])

    assert alerts.open_incident_counts() == {
        ("credit-risk", "psi", "warning"): 2,
        ("credit-risk", "ks", "critical"): 1,
    }
    assert alerts.incidents()[0].id == "fourth"  # most recently updated first
    assert {i.id for i in alerts.incidents(model="credit-risk")} == {r.id for r in firing}
    assert [i.id for i in alerts.incidents(status="resolved")] == ["fourth"]
    assert alerts.incidents(model="fraud", status="firing") == []
    assert len(alerts.incidents(limit=2)) == 2

    listed = alerts.events(model="credit-risk")
    assert [d.event for d in listed] == list(reversed(events))  # newest first, with targets
    assert all([o.target for o in d.outbox] == ["a", "b"] for d in listed)
    assert all(o.state == "pending" and o.attempts == 0 for d in listed for o in d.outbox)
    assert [d.event.event_id for d in alerts.events(limit=1)] == [other_event.event_id]
    assert alerts.events(model="fraud")[0].event.targets == ()
    assert event_from_json(listed[0].event.payload) == alert(2, at=events[2].created_at)


def test_event_rows_round_trip_through_event_row(clock: FakeClock) -> None:
    original = alert(1, at=clock())
    row = event_row(original, ("a", "b", "a"))
    assert row == EventRow(
        event_id=original.id,
        model="credit-risk",
        rule="psi",
        subject="feature_1",
        incident=original.incident,
        type="drift.detected",
        created_at=clock(),
        payload=row.payload,
        targets=("a", "b"),
    )
    assert event_from_json(row.payload) == original
    assert incident_key("m", "r", "s", "i") == incident_key("m", "r", "s", "i")
    assert incident_key("m", "r", "s", "i") != incident_key("m", "r", "", "i")


# --- delivery to a real receiver -------------------------------------------------------------


class SignedRenderer:
    """Renders stored events in the driftline format, signed, for the receiver's one target."""

    def __init__(self, url: str) -> None:
        self.target = WebhookTarget(name="hook", url=url, secret_env="HOOK_SECRET")

    def __call__(self, event: OutboxEvent, now: float) -> HttpRequest:
        return render_request(
            event_from_json(event.payload), self.target, now=now, secret=SecretStr(SECRET)
        )


def verifier(clock: FakeClock) -> Callable[[Mapping[str, str], bytes], bool]:
    """The receiver's check of the driftline signature, at ``clock``'s time."""

    def verify(headers: Mapping[str, str], body: bytes) -> bool:
        try:
            verify_driftline_signature(
                SECRET, headers.get(SIGNATURE_HEADER.lower(), ""), body, now=clock()
            )
        except SignatureError:
            return False
        return True

    return verify


@pytest.mark.integration
def test_two_deliverers_over_the_sql_outbox_deliver_every_event_once(
    store: Store, alerts: AlertStore, clock: FakeClock
) -> None:
    events = [event_row(alert(i, at=clock()), ("hook",)) for i in range(120)]
    assert alerts.advance("credit-risk", None, 0.0, {}, [], events)
    outbox = SqlOutbox(store)
    policy = DeliveryPolicy(timeout_s=2, lease_s=60, batch_size=8, concurrency=4, idle_sleep_s=0.02)
    with Receiver(verify=verifier(clock)) as receiver:
        deliverers = [
            Deliverer(
                outbox=outbox,
                render=SignedRenderer(receiver.url),
                send=UrllibSender(proxies={}),
                policy=policy,
                owner=owner,
                clock=clock,
            )
            for owner in ("one", "two")
        ]
        run_deliverers(deliverers, outbox, len(events))
    ids = [e.event_id for e in events]
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
    assert len(receiver.requests) == len(ids)
    assert outbox.counts() == {"pending": 0, "delivered": 120, "dead": 0}
    attempts = [a for d in alerts.events(limit=200) for a in d.attempts]
    assert Counter(a.outcome for a in attempts) == {"delivered": 120}


@pytest.mark.integration
def test_500s_then_recovery_deliver_every_event_once_over_the_sql_outbox(
    store: Store, alerts: AlertStore, clock: FakeClock
) -> None:
    events = [event_row(alert(i, at=clock()), ("hook",)) for i in range(10)]
    assert alerts.advance("credit-risk", None, 0.0, {}, [], events)
    outbox = SqlOutbox(store)
    with (
        Receiver(verify=verifier(clock), statuses=[500] * 6) as receiver,
        Deliverer(
            outbox=outbox,
            render=SignedRenderer(receiver.url),
            send=UrllibSender(proxies={}),
            policy=DeliveryPolicy(timeout_s=2, lease_s=60, batch_size=50),
            clock=clock,
        ) as deliverer,
    ):
        for _ in range(20):
            deliverer.run_once()
            if outbox.counts()["pending"] == 0:
                break
            clock.advance(400)  # past every backoff
    ids = [e.event_id for e in events]
    assert receiver.accepted == Counter(dict.fromkeys(ids, 1))
    assert outbox.counts() == {"pending": 0, "delivered": 10, "dead": 0}
    attempts = [a for d in alerts.events() for a in d.attempts]
    assert Counter(a.outcome for a in attempts) == {"http_error": 6, "delivered": 10}
    assert all(a.status_code == 500 for a in attempts if a.outcome == "http_error")
    stored = [outbox.get(i, "hook") for i in ids]
    assert sum(e.attempts for e in stored if e is not None) == 16

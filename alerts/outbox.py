"""The durable outbox of webhook deliveries: the port a store implements, and an in-memory one.

An alert event fans out to every target of its rule; each (event_id, target) pair is one
:class:`OutboxEvent`, delivered, retried and given up independently of the others.

Delivery workers take events with :meth:`Outbox.claim`, which leases them to one owner
for ``lease_s`` seconds: while the lease holds, no other owner can claim the event, and
once it expires (the owner crashed or hung) any owner can take it over. Only the current
lease owner may record an outcome; the result of an owner that lost its lease is ignored,
so a slow worker cannot overwrite what its successor recorded.

Times are Unix seconds (``float``), read from a clock the caller injects.

:class:`MemoryOutbox` is the reference implementation of these semantics (unit tests and
benchmarks use it); the SQL store implements the same :class:`Outbox` protocol.
"""

from __future__ import annotations

import dataclasses
import heapq
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

#: Where an outbox event is in its life.
State = Literal["pending", "delivered", "dead"]
#: The outcome of one delivery attempt (the ``outcome`` label of
#: ``driftline_webhook_deliveries_total``); ``dead`` is a failed attempt that gave the event up.
Outcome = Literal["delivered", "http_error", "timeout", "connection_error", "dead"]

STATES: tuple[State, ...] = ("pending", "delivered", "dead")
OUTCOMES: tuple[Outcome, ...] = ("delivered", "http_error", "timeout", "connection_error", "dead")


class OutboxError(ValueError):
    """An outbox argument is invalid; ``name`` is the parameter."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxEvent:
    """One event to deliver to one target, as stored in the outbox.

    ``payload`` is the stored serialized alert event (what the renderer turns into a
    request); ``attempts`` counts the attempts made so far; ``lease_owner`` and
    ``lease_expires_at`` are set while a worker holds the event.
    """

    event_id: str
    target: str
    payload: bytes
    created_at: float
    attempts: int = 0
    next_attempt_at: float
    state: State = "pending"
    last_error: str | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        """The ``(event_id, target)`` pair that identifies this delivery."""
        return (self.event_id, self.target)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryAttempt:
    """The record of one delivery attempt of an event to a target.

    ``attempt`` is 1 for the first attempt; ``status_code`` is the HTTP status when a
    response came back; ``error`` is a short description of a failure (never headers,
    bodies or URLs, which may hold secrets).
    """

    event_id: str
    target: str
    attempt: int
    started_at: float
    finished_at: float
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptResult:
    """An attempt to record: the event moves to ``state`` (due at ``next_attempt_at`` if pending).

    ``state`` ``"delivered"`` is :meth:`Outbox.record_success`, ``"pending"`` with
    ``next_attempt_at`` :meth:`Outbox.record_failure`, ``"dead"`` :meth:`Outbox.record_dead`.
    """

    attempt: DeliveryAttempt
    state: State
    next_attempt_at: float | None = None

    def __post_init__(self) -> None:
        if (self.state == "pending") != (self.next_attempt_at is not None):
            raise OutboxError(
                "next_attempt_at",
                f"set exactly when state is pending; got {self.next_attempt_at!r} with "
                f"state {self.state!r}",
            )


@runtime_checkable
class Outbox(Protocol):
    """The port of the durable outbox: what the delivery engine needs from a store.

    Implementations must be safe to call from several threads and processes at once
    (several :class:`~alerts.delivery.Deliverer` may share one outbox). Every ``record_*``
    method returns ``False`` and changes nothing when ``owner`` no longer holds the
    event's lease (another owner claimed it after the lease expired) or the event is
    not pending.
    """

    def enqueue(self, event: OutboxEvent) -> bool:
        """Adds a pending event; returns ``False`` (and changes nothing) if its key exists."""
        ...

    def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        """Leases up to ``limit`` due pending events to ``owner``; returns them, earliest first.

        Due: ``next_attempt_at <= now`` and no lease, or one that expired
        (``lease_expires_at <= now``). The returned events carry the new lease.
        """
        ...

    def record_success(
        self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt
    ) -> bool:
        """Marks the event delivered and releases its lease; returns whether it was recorded."""
        ...

    def record_failure(
        self,
        event_id: str,
        target: str,
        owner: str,
        attempt: DeliveryAttempt,
        next_attempt_at: float,
    ) -> bool:
        """Keeps the event pending until ``next_attempt_at``; returns whether it was recorded."""
        ...

    def record_dead(self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt) -> bool:
        """Gives the event up (kept, state ``dead``); returns whether it was recorded."""
        ...

    def record(self, owner: str, results: Sequence[AttemptResult]) -> list[bool]:
        """Records several attempts at once (a database: in one transaction).

        Returns, per result, whether it was recorded, by the rules of the
        ``record_*`` methods.
        """
        ...

    def redeliver(self, event_id: str, target: str, now: float) -> bool:
        """Puts a dead event back to pending, due at ``now``, attempts kept.

        Returns ``False`` when there is no such event or it is not dead.
        """
        ...

    def counts(self) -> Mapping[str, int]:
        """Returns the number of events in each state (every state present, zeros included)."""
        ...


class MemoryOutbox:
    """A thread-safe in-memory :class:`Outbox`: the reference semantics of the port.

    Not durable (a restart loses it): for tests and benchmarks. Pending events are
    indexed apart from delivered and dead ones, so a claim costs time in the number
    of pending events only, however many finished events are kept.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[tuple[str, str], OutboxEvent] = {}
        self._pending: set[tuple[str, str]] = set()
        self._counts: dict[str, int] = dict.fromkeys(STATES, 0)

    def enqueue(self, event: OutboxEvent) -> bool:
        """Adds a pending event; returns ``False`` (and changes nothing) if its key exists."""
        if event.state != "pending":
            raise OutboxError("event", f"a new event must be pending, not {event.state!r}")
        if event.lease_owner is not None:
            raise OutboxError("event", "a new event must not be leased")
        with self._lock:
            if event.key in self._events:
                return False
            self._events[event.key] = event
            self._pending.add(event.key)
            self._counts["pending"] += 1
            return True

    def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        """Leases up to ``limit`` due pending events to ``owner``; returns them, earliest first."""
        if not owner:
            raise OutboxError("owner", "must be a non-empty string")
        if not lease_s > 0:
            raise OutboxError("lease_s", f"must be > 0; got {lease_s!r}")
        if limit < 1:
            raise OutboxError("limit", f"must be >= 1; got {limit!r}")
        with self._lock:
            due = (
                event
                for key in self._pending
                if (event := self._events[key]).next_attempt_at <= now
                and (event.lease_expires_at is None or event.lease_expires_at <= now)
            )
            chosen = heapq.nsmallest(
                limit, due, key=lambda e: (e.next_attempt_at, e.created_at, e.key)
            )
            claimed = []
            for event in chosen:
                leased = dataclasses.replace(
                    event, lease_owner=owner, lease_expires_at=now + lease_s
                )
                self._events[event.key] = leased
                claimed.append(leased)
            return claimed

    def _held(self, key: tuple[str, str], owner: str) -> OutboxEvent | None:
        # An owner whose lease expired still holds the event until someone else claims
        # it: nobody else can have sent it meanwhile, so its result is still the truth.
        event = self._events.get(key)
        if event is None or event.state != "pending" or event.lease_owner != owner:
            return None
        return event

    def _finish(self, event: OutboxEvent, state: State, attempt: DeliveryAttempt) -> None:
        self._events[event.key] = dataclasses.replace(
            event,
            state=state,
            attempts=attempt.attempt,
            last_error=attempt.error,
            lease_owner=None,
            lease_expires_at=None,
        )
        self._pending.discard(event.key)
        self._counts["pending"] -= 1
        self._counts[state] += 1

    def record_success(
        self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt
    ) -> bool:
        """Marks the event delivered and releases its lease; returns whether it was recorded."""
        with self._lock:
            event = self._held((event_id, target), owner)
            if event is None:
                return False
            self._finish(event, "delivered", attempt)
            return True

    def record_failure(
        self,
        event_id: str,
        target: str,
        owner: str,
        attempt: DeliveryAttempt,
        next_attempt_at: float,
    ) -> bool:
        """Keeps the event pending until ``next_attempt_at``; returns whether it was recorded."""
        with self._lock:
            event = self._held((event_id, target), owner)
            if event is None:
                return False
            self._events[event.key] = dataclasses.replace(
                event,
                attempts=attempt.attempt,
                next_attempt_at=next_attempt_at,
                last_error=attempt.error,
                lease_owner=None,
                lease_expires_at=None,
            )
            return True

    def record_dead(self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt) -> bool:
        """Gives the event up (kept, state ``dead``); returns whether it was recorded."""
        with self._lock:
            event = self._held((event_id, target), owner)
            if event is None:
                return False
            self._finish(event, "dead", attempt)
            return True

    def record(self, owner: str, results: Sequence[AttemptResult]) -> list[bool]:
        """Records each result as the matching ``record_*`` method does; returns each verdict."""
        recorded = []
        for result in results:
            a = result.attempt
            if result.state == "delivered":
                recorded.append(self.record_success(a.event_id, a.target, owner, a))
            elif result.state == "dead":
                recorded.append(self.record_dead(a.event_id, a.target, owner, a))
            else:
                assert result.next_attempt_at is not None
                recorded.append(
                    self.record_failure(a.event_id, a.target, owner, a, result.next_attempt_at)
                )
        return recorded

    def redeliver(self, event_id: str, target: str, now: float) -> bool:
        """Puts a dead event back to pending, due at ``now``, attempts kept; returns success."""
        with self._lock:
            key = (event_id, target)
            event = self._events.get(key)
            if event is None or event.state != "dead":
                return False
            self._events[key] = dataclasses.replace(event, state="pending", next_attempt_at=now)
            self._pending.add(key)
            self._counts["dead"] -= 1
            self._counts["pending"] += 1
            return True

    def counts(self) -> Mapping[str, int]:
        """Returns the number of events in each state (every state present, zeros included)."""
        with self._lock:
            return dict(self._counts)

    def get(self, event_id: str, target: str) -> OutboxEvent | None:
        """Returns the stored event of ``(event_id, target)``, or ``None``."""
        with self._lock:
            return self._events.get((event_id, target))

    def prune_delivered(self) -> int:
        """Forgets every delivered event (a store's retention job); returns how many."""
        with self._lock:
            keys = [key for key, event in self._events.items() if event.state == "delivered"]
            for key in keys:
                del self._events[key]
            self._counts["delivered"] = 0
            return len(keys)

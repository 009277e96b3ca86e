"""The alerting tables: rule cursors and states, incidents, events, and the webhook outbox.

:class:`AlertStore` moves a model's alert rules forward: :meth:`AlertStore.advance`
writes the rules' new states, incidents and emitted events (with one outbox row per
target) in ONE transaction that first compare-and-sets the model's cursor, so that of
several processes evaluating the same windows exactly one records them. Event ids are
deterministic (``alerts.events.event_id``): events and outbox rows are inserted with
``ON CONFLICT DO NOTHING``, so a retry never queues an event twice.

:class:`SqlOutbox` is the :class:`alerts.outbox.Outbox` over those tables, with the
semantics of :class:`alerts.outbox.MemoryOutbox`. Both reuse a :class:`Store`'s engines
and clock. Times are Unix epoch seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from sqlalchemy import Select, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from alerts.events import AlertEvent, event_from_json, event_to_json
from alerts.outbox import STATES, AttemptResult, DeliveryAttempt, OutboxError, OutboxEvent
from monitor.store import _sql
from monitor.store.models import (
    DEAD,
    DELIVERED,
    FIRING,
    PENDING,
    AlertCursor,
    AlertDeliveryAttempt,
    AlertEventRecord,
    AlertIncident,
    AlertOutbox,
    AlertRuleState,
    Base,
)
from monitor.store.repository import Store
from monitor.store.rows import EventRow, IncidentRow, OutboxRow

#: A rule state's key: ``(model, rule, subject)`` (``alerts.engine.StateKey``).
StateKey = tuple[str, str, str]
#: A key of :meth:`AlertStore.open_incident_counts`: ``(model, rule, severity)``.
IncidentCountKey = tuple[str, str, str]

#: The namespace of :func:`incident_key`'s uuid5. Never change it: stored incidents
#: would stop matching the ids computed for their later windows.
INCIDENT_NAMESPACE: Final = uuid.UUID("0b6c3f1e-8a51-5d6e-b0a4-2f7d9e4c1a38")


@dataclass(frozen=True, kw_only=True, slots=True)
class EventDelivery:
    """An alert event with where its deliveries stand: one outbox row per target.

    ``attempts`` are every recorded delivery attempt of the event, by target and attempt.
    """

    event: EventRow
    outbox: tuple[OutboxRow, ...]
    attempts: tuple[DeliveryAttempt, ...]


def incident_key(model: str, rule: str, subject: str, incident: str) -> str:
    """Return the ``alert_incidents`` id of ``incident`` of ``rule`` for ``subject`` of ``model``.

    ``incident`` (``alerts.engine.incident_id``, an event's ``incident``) is unique only
    within one ``(model, rule, subject)``; the returned uuid5 string is unique across them
    and the same on every call.
    """
    # A JSON array is unambiguous where joining with a separator is not.
    name = orjson.dumps([model, rule, subject, incident]).decode()
    return str(uuid.uuid5(INCIDENT_NAMESPACE, name))


def event_row(event: AlertEvent, targets: Iterable[str]) -> EventRow:
    """Return the :class:`EventRow` that stores ``event`` and queues it for ``targets``."""
    return EventRow(
        event_id=event.id,
        model=event.model,
        rule=event.rule,
        subject=event.subject,
        incident=event.incident,
        type=event.type.value,
        created_at=event.created_at,
        payload=event_to_json(event),
        targets=tuple(dict.fromkeys(targets)),
    )


class AlertStore:
    """The alert rules' durable state of a :class:`Store`'s database, and the operator reads.

    Uses ``store``'s engines and clock (``updated_at``, ``created_at`` of rows it stamps).
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    # --- the rules' progress ---------------------------------------------------------------

    def advance(
        self,
        model: str,
        expected_position: float | None,
        new_position: float | None,
        states: Mapping[StateKey, Mapping[str, Any]],
        incidents: Sequence[IncidentRow],
        events: Sequence[EventRow],
    ) -> bool:
        """Record what the rules of ``model`` did up to ``new_position``; return whether it won.

        One transaction: the model's cursor moves from ``expected_position`` (None: no
        window consumed yet) to ``new_position`` only if it is still there; if another
        process moved it first, nothing is written and False is returned. Otherwise
        ``states`` (``RuleState.to_json`` dicts by ``(model, rule, subject)``) and
        ``incidents`` replace the stored ones, and ``events`` are stored and queued,
        pending and due now, for each of their targets; an event or outbox row whose id
        is already stored is left as it is (ids are deterministic: a retry adds nothing).

        Raises ValueError if a state, incident or event belongs to another model, or an
        event has an empty target name.
        """
        _check_model(model, states, incidents, events)
        store = self.store
        now = store.clock()
        state_values = [
            {"model": m, "rule": r, "subject": s, "state": dict(state), "updated_at": now}
            for (m, r, s), state in states.items()
        ]
        incident_values = _sql.last_per_key(
            (_sql.values(row, created_at=now, updated_at=now) for row in incidents), ["id"]
        )
        event_values = _first_per_key(
            (_event_values(row) for row in events), _sql.primary_key(AlertEventRecord)
        )
        outbox_values = _first_per_key(
            (
                {
                    "event_id": row.event_id,
                    "target": target,
                    "state": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": row.created_at,
                }
                for row in events
                for target in row.targets
            ),
            _sql.primary_key(AlertOutbox),
        )
        with store._writer.connect() as connection, connection.begin() as transaction:
            if not self._move_cursor(connection, model, expected_position, new_position, now):
                transaction.rollback()
                return False
            if state_values:
                connection.execute(_sql.upsert(store._dialect, AlertRuleState), state_values)
            if incident_values:
                connection.execute(_upsert_incidents(store._dialect), incident_values)
            if event_values:
                connection.execute(_insert_new(store._dialect, AlertEventRecord), event_values)
            if outbox_values:
                connection.execute(_insert_new(store._dialect, AlertOutbox), outbox_values)
        return True

    def _move_cursor(
        self,
        connection: Connection,
        model: str,
        expected: float | None,
        new: float | None,
        now: float,
    ) -> bool:
        """Compare-and-set the cursor of ``model`` from ``expected`` to ``new``; return success."""
        if expected is None:
            # ON CONFLICT DO NOTHING: of two first advances, the second waits for the first
            # to commit, inserts nothing and then finds the cursor moved.
            inserted = connection.execute(
                _insert_new(self.store._dialect, AlertCursor)
                .values(model=model, position=new, updated_at=now)
                .execution_options(preserve_rowcount=True)
            )
            if inserted.rowcount == 1:
                return True
        # On PostgreSQL a concurrent UPDATE of the row waits for the other transaction and
        # then re-checks the WHERE against the committed position: one of them moves it.
        moved = connection.execute(
            update(AlertCursor)
            .where(AlertCursor.model == model, AlertCursor.position.is_not_distinct_from(expected))
            .values(position=new, updated_at=now)
        )
        return bool(moved.rowcount == 1)

    def cursor(self, model: str) -> float | None:
        """Return the ``window_start`` of the last window ``model``'s rules consumed, or None."""
        with self.store.engine.connect() as connection:
            position: float | None = connection.scalar(
                select(AlertCursor.position).where(AlertCursor.model == model)
            )
            return position

    def cursors(self) -> dict[str, float]:
        """Return every model's :meth:`cursor` in one query (models without one are absent)."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(select(AlertCursor.model, AlertCursor.position))
            return {row.model: row.position for row in rows if row.position is not None}

    def states(self, model: str) -> dict[StateKey, dict[str, Any]]:
        """Return ``model``'s rule states (``RuleState.to_json`` dicts) by their state keys."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                select(
                    AlertRuleState.model,
                    AlertRuleState.rule,
                    AlertRuleState.subject,
                    AlertRuleState.state,
                )
                .where(AlertRuleState.model == model)
                .order_by(AlertRuleState.rule, AlertRuleState.subject)
            )
            return {(row.model, row.rule, row.subject): dict(row.state) for row in rows}

    # --- operator reads --------------------------------------------------------------------

    def incidents(
        self, model: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[IncidentRow]:
        """Return up to ``limit`` incidents, most recently updated first.

        Optionally only those of ``model`` and/or with ``status`` (``"firing"``,
        ``"resolved"``).
        """
        statement = _sql.select_as(AlertIncident, IncidentRow)
        if model is not None:
            statement = statement.where(AlertIncident.model == model)
        if status is not None:
            statement = statement.where(AlertIncident.status == status)
        statement = statement.order_by(
            AlertIncident.updated_at.desc(),
            AlertIncident.started_window_start.desc(),
            AlertIncident.id,
        ).limit(limit)
        with self.store.engine.connect() as connection:
            return _sql.build(IncidentRow, connection.execute(statement))

    def events(
        self, model: str | None = None, limit: int = 100, *, event_id: str | None = None
    ) -> list[EventDelivery]:
        """Return up to ``limit`` events, newest first, each with its outbox rows and attempts.

        Optionally only those of ``model``, or the one event ``event_id``. Three
        queries, however many events.
        """
        statement = select(*_event_columns())
        if model is not None:
            statement = statement.where(AlertEventRecord.model == model)
        if event_id is not None:
            statement = statement.where(AlertEventRecord.event_id == event_id)
        statement = statement.order_by(
            AlertEventRecord.created_at.desc(), AlertEventRecord.event_id
        ).limit(limit)
        with self.store.engine.connect() as connection:
            events = [row._asdict() for row in connection.execute(statement)]
            ids = [event["event_id"] for event in events]
            outbox: dict[str, list[OutboxRow]] = {event_id: [] for event_id in ids}
            attempts: dict[str, list[DeliveryAttempt]] = {event_id: [] for event_id in ids}
            if ids:
                rows = connection.execute(
                    _sql.select_as(AlertOutbox, OutboxRow)
                    .where(AlertOutbox.event_id.in_(ids))
                    .order_by(AlertOutbox.event_id, AlertOutbox.target)
                )
                for row in _sql.build(OutboxRow, rows):
                    outbox[row.event_id].append(row)
                rows = connection.execute(
                    select(*_attempt_columns())
                    .where(AlertDeliveryAttempt.event_id.in_(ids))
                    .order_by(
                        AlertDeliveryAttempt.event_id,
                        AlertDeliveryAttempt.target,
                        AlertDeliveryAttempt.attempt,
                        AlertDeliveryAttempt.id,
                    )
                )
                for attempt in _sql.build(DeliveryAttempt, rows):
                    attempts[attempt.event_id].append(attempt)
        return [
            EventDelivery(
                event=EventRow(
                    **(event | {"payload": bytes(event["payload"])}),
                    targets=tuple(row.target for row in outbox[event["event_id"]]),
                ),
                outbox=tuple(outbox[event["event_id"]]),
                attempts=tuple(attempts[event["event_id"]]),
            )
            for event in events
        ]

    def open_incident_counts(self) -> dict[IncidentCountKey, int]:
        """Return the number of firing incidents by ``(model, rule, severity)`` (none: absent).

        What the ``driftline_alerts_active`` gauge shows.
        """
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                select(
                    AlertIncident.model, AlertIncident.rule, AlertIncident.severity, func.count()
                )
                .where(AlertIncident.status == FIRING)
                .group_by(AlertIncident.model, AlertIncident.rule, AlertIncident.severity)
            )
            return {(row[0], row[1], row[2]): int(row[3]) for row in rows}


class SqlOutbox:
    """The :class:`alerts.outbox.Outbox` of a :class:`Store`'s database.

    Semantics of :class:`alerts.outbox.MemoryOutbox`, safe across threads and processes:
    a claim leases rows with a compare-and-set UPDATE of their lease columns (on
    PostgreSQL after ``SELECT ... FOR UPDATE SKIP LOCKED``, so concurrent claimers take
    different rows instead of waiting for each other), and an outcome is recorded only by
    the current lease owner, together with a row in ``alert_delivery_attempts``.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def enqueue(self, event: OutboxEvent) -> bool:
        """Add a pending event; return False (and change nothing) if its key exists.

        ``event.payload`` must be a stored alert event (``event_to_json``) whose id is
        ``event.event_id``: it is stored in ``alert_events`` (unless that id is already
        there) and listed from there. Raises :class:`OutboxError` otherwise.
        """
        if event.state != PENDING:
            raise OutboxError("event", f"a new event must be pending, not {event.state!r}")
        if event.lease_owner is not None:
            raise OutboxError("event", "a new event must not be leased")
        try:
            stored = event_from_json(event.payload)
        except ValueError as error:
            raise OutboxError("event", f"payload is not a stored alert event ({error})") from None
        if stored.id != event.event_id:
            raise OutboxError("event", f"payload is event {stored.id!r}, not {event.event_id!r}")
        store = self.store
        row = replace(event_row(stored, ()), payload=bytes(event.payload))
        outbox = _insert_new(store._dialect, AlertOutbox).values(
            event_id=event.event_id,
            target=event.target,
            state=PENDING,
            attempts=event.attempts,
            next_attempt_at=event.next_attempt_at,
            created_at=event.created_at,
            last_error=event.last_error,
        )
        with store._writer.begin() as connection:
            connection.execute(
                _insert_new(store._dialect, AlertEventRecord).values(**_event_values(row))
            )
            inserted = connection.execute(outbox.execution_options(preserve_rowcount=True))
            return bool(inserted.rowcount == 1)

    def claim(self, owner: str, now: float, lease_s: float, limit: int) -> list[OutboxEvent]:
        """Lease up to ``limit`` due pending events to ``owner``; return them, earliest first.

        Due: ``next_attempt_at <= now`` and no lease, or an expired one
        (``lease_expires_at <= now``). The returned events carry the new lease.
        """
        if not owner:
            raise OutboxError("owner", "must be a non-empty string")
        if not lease_s > 0:
            raise OutboxError("lease_s", f"must be > 0; got {lease_s!r}")
        if limit < 1:
            raise OutboxError("limit", f"must be >= 1; got {limit!r}")
        store = self.store
        order = (
            AlertOutbox.next_attempt_at,
            AlertOutbox.created_at,
            AlertOutbox.event_id,
            AlertOutbox.target,
        )
        candidates = (
            select(AlertOutbox.event_id, AlertOutbox.target)
            .where(*_due(now))
            .order_by(*order)
            .limit(limit)
        )
        if store._dialect == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        with store._writer.begin() as connection:
            keys = [(row.event_id, row.target) for row in connection.execute(candidates)]
            if not keys:
                return []
            key = tuple_(AlertOutbox.event_id, AlertOutbox.target)
            # Compare-and-set: a row someone else leased since it was selected no longer
            # matches the due conditions and is not taken.
            taken = connection.execute(
                update(AlertOutbox)
                .where(key.in_(keys), *_due(now))
                .values(lease_owner=owner, lease_expires_at=now + lease_s)
                .returning(AlertOutbox.event_id, AlertOutbox.target)
            )
            claimed = [(row.event_id, row.target) for row in taken]
            if not claimed:
                return []
            rows = connection.execute(
                _outbox_event_query().where(key.in_(claimed)).order_by(*order)
            )
            return [_outbox_event(row._asdict()) for row in rows]

    def record_success(
        self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt
    ) -> bool:
        """Mark the event delivered and release its lease; return whether it was recorded."""
        return self._finish(event_id, target, owner, attempt, state=DELIVERED)

    def record_failure(
        self,
        event_id: str,
        target: str,
        owner: str,
        attempt: DeliveryAttempt,
        next_attempt_at: float,
    ) -> bool:
        """Keep the event pending until ``next_attempt_at``; return whether it was recorded."""
        return self._finish(
            event_id, target, owner, attempt, state=PENDING, next_attempt_at=next_attempt_at
        )

    def record_dead(self, event_id: str, target: str, owner: str, attempt: DeliveryAttempt) -> bool:
        """Give the event up (kept, state ``dead``); return whether it was recorded."""
        return self._finish(event_id, target, owner, attempt, state=DEAD)

    def _finish(
        self,
        event_id: str,
        target: str,
        owner: str,
        attempt: DeliveryAttempt,
        *,
        state: str,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Record ``attempt`` and move the event to ``state`` if ``owner`` holds it."""
        changes: dict[str, Any] = {
            "state": state,
            "attempts": attempt.attempt,
            "last_error": attempt.error,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if next_attempt_at is not None:
            changes["next_attempt_at"] = next_attempt_at
        with self.store._writer.begin() as connection:
            # An owner whose lease expired still holds the event until someone else claims
            # it (as in MemoryOutbox): nobody else can have sent it meanwhile.
            held = connection.execute(
                update(AlertOutbox)
                .where(
                    AlertOutbox.event_id == event_id,
                    AlertOutbox.target == target,
                    AlertOutbox.state == PENDING,
                    AlertOutbox.lease_owner == owner,
                )
                .values(**changes)
            )
            if held.rowcount != 1:
                return False
            connection.execute(
                _sql.insert(self.store._dialect, AlertDeliveryAttempt).values(
                    _sql.values(attempt, event_id=event_id, target=target)
                )
            )
            return True

    def record(self, owner: str, results: Sequence[AttemptResult]) -> list[bool]:
        """Record several attempts in ONE transaction; return, per result, whether it was recorded.

        Each is recorded as :meth:`_finish` does one (only while ``owner`` holds
        the event); the attempt rows are inserted together.
        """
        if not results:
            return []
        recorded: list[bool] = []
        attempts: list[dict[str, Any]] = []
        with self.store._writer.begin() as connection:
            for result in results:
                a = result.attempt
                held = connection.execute(
                    _RECORD,
                    {
                        "e_id": a.event_id,
                        "e_target": a.target,
                        "e_owner": owner,
                        "new_state": result.state,
                        "new_attempts": a.attempt,
                        "new_error": a.error,
                        "new_next": result.next_attempt_at,
                    },
                )
                recorded.append(held.rowcount == 1)
                if held.rowcount == 1:
                    attempts.append(_sql.values(a))
            if attempts:
                connection.execute(_sql.insert(self.store._dialect, AlertDeliveryAttempt), attempts)
        return recorded

    def redeliver(self, event_id: str, target: str, now: float) -> bool:
        """Put a dead event back to pending, due at ``now``, attempts kept; return success.

        Returns False when there is no such event or it is not dead.
        """
        with self.store._writer.begin() as connection:
            revived = connection.execute(
                update(AlertOutbox)
                .where(
                    AlertOutbox.event_id == event_id,
                    AlertOutbox.target == target,
                    AlertOutbox.state == DEAD,
                )
                .values(state=PENDING, next_attempt_at=now, lease_owner=None, lease_expires_at=None)
            )
            return bool(revived.rowcount == 1)

    def counts(self) -> dict[str, int]:
        """Return the number of events in each state (every state present, zeros included)."""
        with self.store.engine.connect() as connection:
            rows = connection.execute(
                select(AlertOutbox.state, func.count()).group_by(AlertOutbox.state)
            )
            found = {row[0]: int(row[1]) for row in rows}
        return {state: found.get(state, 0) for state in STATES}

    def get(self, event_id: str, target: str) -> OutboxEvent | None:
        """Return the stored event of ``(event_id, target)``, or None."""
        with self.store.engine.connect() as connection:
            row = connection.execute(
                _outbox_event_query().where(
                    AlertOutbox.event_id == event_id, AlertOutbox.target == target
                )
            ).one_or_none()
        return None if row is None else _outbox_event(row._asdict())


# --- helpers -------------------------------------------------------------------------------


def _check_model(
    model: str,
    states: Mapping[StateKey, Mapping[str, Any]],
    incidents: Sequence[IncidentRow],
    events: Sequence[EventRow],
) -> None:
    """Raise ValueError unless every row belongs to ``model`` and every target is named."""
    owners: list[tuple[str, str, object]] = [("state", key[0], key) for key in states]
    owners += [("incident", row.model, row.id) for row in incidents]
    owners += [("event", row.model, row.event_id) for row in events]
    for kind, owner, name in owners:
        if owner != model:
            raise ValueError(f"advance({model!r}) got the {kind} {name!r} of model {owner!r}")
    for row in events:
        if not all(isinstance(target, str) and target for target in row.targets):
            raise ValueError(f"event {row.event_id!r}: targets must be non-empty strings")


def _event_values(row: EventRow) -> dict[str, Any]:
    """Return the ``alert_events`` columns of ``row`` (its targets go to the outbox)."""
    return {column.name: getattr(row, column.name) for column in _event_columns()}


def _event_columns() -> list[Any]:
    """Return the columns of ``alert_events``, in the order of :class:`EventRow`'s fields."""
    return list(AlertEventRecord.__table__.columns)


def _attempt_columns() -> list[Any]:
    """Return the columns of ``alert_delivery_attempts`` that make a ``DeliveryAttempt``."""
    columns = AlertDeliveryAttempt.__table__.columns
    return [column for column in columns if column.name != "id"]


# Compiled once: recording a batch runs it once per attempt with new parameters.
_RECORD = (
    update(AlertOutbox)
    .where(
        AlertOutbox.event_id == bindparam("e_id"),
        AlertOutbox.target == bindparam("e_target"),
        AlertOutbox.state == PENDING,
        AlertOutbox.lease_owner == bindparam("e_owner"),
    )
    .values(
        state=bindparam("new_state"),
        attempts=bindparam("new_attempts"),
        last_error=bindparam("new_error"),
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=func.coalesce(bindparam("new_next"), AlertOutbox.next_attempt_at),
    )
)


def _first_per_key(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Return ``rows`` with only the first of each key (what ON CONFLICT DO NOTHING keeps)."""
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(tuple(row[key] for key in keys), row)
    return list(unique.values())


def _insert_new(dialect: str, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """Return an INSERT of ``model`` that skips rows whose primary key is stored."""
    return _sql.insert(dialect, model).on_conflict_do_nothing(
        index_elements=_sql.primary_key(model)
    )


def _upsert_incidents(dialect: str) -> postgresql.Insert | sqlite.Insert:
    """Return an upsert of incidents that replaces every column but the first ``created_at``."""
    statement = _sql.insert(dialect, AlertIncident)
    keep = {"id", "created_at"}
    return statement.on_conflict_do_update(
        index_elements=["id"],
        set_={
            column.name: statement.excluded[column.name]
            for column in AlertIncident.__table__.columns
            if column.name not in keep
        },
    )


def _due(now: float) -> tuple[Any, ...]:
    """Return the conditions of an outbox row a claim at ``now`` may lease."""
    return (
        AlertOutbox.state == PENDING,
        AlertOutbox.next_attempt_at <= now,
        or_(AlertOutbox.lease_expires_at.is_(None), AlertOutbox.lease_expires_at <= now),
    )


def _outbox_event_query() -> Select[Any]:
    """Return a SELECT of outbox rows joined with their events' payloads."""
    return select(*AlertOutbox.__table__.columns, AlertEventRecord.payload).join(
        AlertEventRecord, AlertEventRecord.event_id == AlertOutbox.event_id
    )


def _outbox_event(row: dict[str, Any]) -> OutboxEvent:
    """Return the :class:`OutboxEvent` of a row of :func:`_outbox_event_query`."""
    return OutboxEvent(**(row | {"payload": bytes(row["payload"])}))


__all__ = [
    "INCIDENT_NAMESPACE",
    "AlertStore",
    "EventDelivery",
    "IncidentCountKey",
    "SqlOutbox",
    "StateKey",
    "event_row",
    "incident_key",
]

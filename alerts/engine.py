"""The incident state machine: rule verdicts over consecutive windows -> alert emissions.

Pure: no clock, no I/O. Time is the windows' event time (``window_end``), so
replaying the same windows (a backtest, a second process) gives the same
states, incidents and emissions.

One :class:`RuleState` per (model, rule, subject) moves between three statuses:

* ``ok`` -> ``pending`` on a breaching window; -> ``firing`` once ``fire_after``
  consecutive windows breach. Firing emits the rule's event type (sequence 0)
  and, when the rule has ``retrain``, one ``retrain.requested`` (once per
  incident, never on repeats). A clean window in ``pending`` goes back to
  ``ok`` and the count restarts.
* ``firing``: a breaching window re-emits the rule's event (sequence + 1) when
  at least ``repeat_interval_s`` of event time passed since the last
  notification (``window_end - last_notified_window_end``); only breaching
  windows remind, since a reminder carries fresh evidence. ``resolve_after``
  consecutive clean windows emit ``alert.resolved`` and go back to ``ok``; a
  breach in between restarts the clean count.
* ``unknown`` windows (missing input, see :mod:`alerts.rules`) leave every
  counter unchanged: breach, unknown, breach counts as two consecutive
  breaches, and missing data neither fires nor resolves anything.

So a value hovering at the threshold (breach, clean, breach, clean, ...) with
``fire_after`` and ``resolve_after`` of 2 or more never fires, and once
firing never resolves and fires again (no flapping).

The incident id is the UTC time (ISO 8601) of the window start of the first
breach of the streak that fired: derived from the data alone, so two
processes compute the same id, and with the model, rule and subject it makes
``alerts.events.event_id`` unique.

Window order. Windows must be fed once each, in event-time order (the service
keeps a cursor); :meth:`RuleEngine.step` raises :class:`WindowOrderError` for a
window that does not end after a state's ``last_window_end``. A window that is
re-evaluated later (late labels changing its quality) is **not** fed again: a
past window's changed verdict does not rewrite the incident history; the
windows that follow carry the new information.

States are JSON-serialisable (:meth:`RuleState.to_json` / :meth:`RuleState.from_json`,
:func:`states_to_json` / :func:`states_from_json`) for the service's database.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from alerts.rules import EventTypeName, Rule, Severity, Verdict, evaluate_rule
from detectors.window_result import EstimatedPerformance, WindowResult

RuleStatus = Literal["ok", "pending", "firing"]
#: A state's key: (model, rule name, subject).
StateKey = tuple[str, str, str]

_STATUSES: tuple[RuleStatus, ...] = ("ok", "pending", "firing")
_SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")


class WindowOrderError(ValueError):
    """A window was fed that does not end after the last window a rule state has seen."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleState:
    """Where one rule stands for one subject of one model after the windows fed so far.

    ``consecutive_breaches`` / ``consecutive_clean`` count the current streak;
    ``streak_started`` is the window start of the streak's first breach.
    While ``firing``: ``incident`` is its id, ``incident_started`` the window
    start of its first breach, ``severity`` the severity it was notified
    with (a resolution repeats it), ``last_notified_window_end`` the window
    end of its latest notification and ``sequence`` how many repeats were sent.
    ``last_window_start`` / ``last_window_end`` are the latest window fed.
    """

    model: str
    rule: str
    subject: str
    status: RuleStatus = "ok"
    consecutive_breaches: int = 0
    consecutive_clean: int = 0
    streak_started: float | None = None
    incident: str | None = None
    incident_started: float | None = None
    severity: Severity | None = None
    last_notified_window_end: float | None = None
    sequence: int = 0
    last_window_start: float | None = None
    last_window_end: float | None = None

    @property
    def key(self) -> StateKey:
        """The state's key: (model, rule, subject)."""
        return (self.model, self.rule, self.subject)

    def to_json(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict (see :meth:`from_json`)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuleState:
        """Return the state :meth:`to_json` produced; ValueError names a bad or missing field."""
        names = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"rule state: unknown fields {unknown}")
        for name in ("model", "rule", "subject"):
            if not isinstance(data.get(name), str):
                raise ValueError(f"rule state {name}: must be a string; got {data.get(name)!r}")
        if data.get("status", "ok") not in _STATUSES:
            raise ValueError(f"rule state status: one of {_STATUSES}; got {data.get('status')!r}")
        if data.get("severity") not in (None, *_SEVERITIES):
            raise ValueError(f"rule state severity: one of {_SEVERITIES}; got {data['severity']!r}")
        for name in ("consecutive_breaches", "consecutive_clean", "sequence"):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"rule state {name}: must be an integer >= 0; got {value!r}")
        for name in (
            "streak_started",
            "incident_started",
            "last_notified_window_end",
            "last_window_start",
            "last_window_end",
        ):
            value = data.get(name)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(
                    f"rule state {name}: must be a finite number or null; got {value!r}"
                )
        incident = data.get("incident")
        if incident is not None and not isinstance(incident, str):
            raise ValueError(f"rule state incident: must be a string or null; got {incident!r}")
        return cls(**data)


@dataclass(frozen=True, slots=True, kw_only=True)
class Emission:
    """An alert event to send, as plain values; the service turns it into an ``AlertEvent``.

    ``type`` is an ``alerts.events.EventType`` value; ``sequence`` numbers the
    repeats of a firing incident (0 for the first notification, the
    retrain request and the resolution); with ``model``, ``rule``,
    ``subject``, ``incident`` and ``type`` it is what ``event_id`` hashes.
    ``window_start`` / ``window_end`` are the window that caused it (for an
    external resolution, the latest window the state saw).
    """

    type: EventTypeName
    model: str
    rule: str
    subject: str
    incident: str
    sequence: int
    severity: Severity
    window_start: float
    window_end: float
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


def incident_id(window_start: float) -> str:
    """Return the incident id of a streak whose first breach is the window starting then.

    ISO 8601 UTC with a ``Z``; milliseconds only when the start has a fraction.
    """
    moment = datetime.fromtimestamp(window_start, tz=UTC).replace(tzinfo=None)
    spec = "seconds" if float(window_start).is_integer() else "milliseconds"
    return moment.isoformat(timespec=spec) + "Z"


def retrain_details(result: WindowResult) -> dict[str, Any]:
    """Return the ``retrain.requested`` details of a window (the ``alerts.retrain`` payload).

    ``features`` lists the drifted features with their statistic and impact:
    the window's drift impact (statistic x importance, 0 for a feature the
    model's attributions do not cover) when it has one, else the feature's
    effect size (``impact_source`` says which); the measured and
    estimated quality and the reference profile version complete it.
    """
    features: list[dict[str, Any]] = []
    if result.drift is not None:
        impacts = {d.name: d.impact for d in result.drift_impact if math.isfinite(d.impact)}
        for f in result.drift.drifted:
            if result.drift_impact:
                impact = impacts.get(f.name, 0.0)
            else:
                impact = f.effect_size if math.isfinite(f.effect_size) else 0.0
            features.append(
                {
                    "name": f.name,
                    "statistic": f.statistic if math.isfinite(f.statistic) else None,
                    "impact": impact,
                }
            )
    estimated = result.estimated_performance
    return {
        "features": sorted(features, key=lambda f: (-f["impact"], f["name"])),
        "impact_source": "drift_impact" if result.drift_impact else "effect_size",
        "measured_quality": dict(result.quality.metrics) or None,
        "estimated_quality": estimated.metrics
        if isinstance(estimated, EstimatedPerformance)
        else None,
        "reference_version": None
        if result.profile_version is None
        else str(result.profile_version),
    }


def _emit(
    state: RuleState,
    kind: EventTypeName,
    result: WindowResult,
    *,
    severity: Severity,
    summary: str,
    details: Mapping[str, Any],
    sequence: int = 0,
) -> Emission:
    assert state.incident is not None
    return Emission(
        type=kind,
        model=state.model,
        rule=state.rule,
        subject=state.subject,
        incident=state.incident,
        sequence=sequence,
        severity=severity,
        window_start=result.window_start,
        window_end=result.window_end,
        summary=summary,
        details=details,
    )


def advance(
    state: RuleState, rule: Rule, verdict: Verdict, result: WindowResult
) -> tuple[RuleState, list[Emission]]:
    """Return the state after one more window and what it emits (module docstring).

    Raises :class:`WindowOrderError` when ``result`` does not end after the
    state's last window.
    """
    _check_order(state, result)
    seen = replace(state, last_window_start=result.window_start, last_window_end=result.window_end)
    if verdict.status == "unknown":
        return seen, []
    evidence = verdict.evidence
    if verdict.status == "clean":
        clean = seen.consecutive_clean + 1
        if seen.status == "firing" and clean >= rule.resolve_after:
            summary = f"resolved after {clean} clean windows: {evidence.summary}"
            emission = _emit(
                seen,
                "alert.resolved",
                result,
                severity=seen.severity or rule.severity,
                summary=summary,
                details={"reason": "clean", "clean_windows": clean, **evidence.details},
            )
            return _cleared(seen, consecutive_clean=clean), [emission]
        if seen.status == "firing":
            return replace(seen, consecutive_breaches=0, consecutive_clean=clean), []
        return _cleared(seen, consecutive_clean=clean), []
    breaches = seen.consecutive_breaches + 1
    started = seen.streak_started if seen.consecutive_breaches else result.window_start
    seen = replace(seen, consecutive_breaches=breaches, consecutive_clean=0, streak_started=started)
    if seen.status == "firing":
        assert seen.last_notified_window_end is not None
        if result.window_end - seen.last_notified_window_end < rule.repeat_interval_s:
            return seen, []
        repeated = replace(
            seen, sequence=seen.sequence + 1, last_notified_window_end=result.window_end
        )
        severity = seen.severity or rule.severity
        summary = f"still firing: {evidence.summary}"
        emission = _emit(
            repeated,
            rule.event_type,
            result,
            severity=severity,
            summary=summary,
            details=evidence.details,
            sequence=repeated.sequence,
        )
        return repeated, [emission]
    if breaches < rule.fire_after:
        return replace(seen, status="pending"), []
    assert started is not None
    firing = replace(
        seen,
        status="firing",
        incident=incident_id(started),
        incident_started=started,
        severity=rule.severity,
        last_notified_window_end=result.window_end,
        sequence=0,
    )
    emissions = [
        _emit(
            firing,
            rule.event_type,
            result,
            severity=rule.severity,
            summary=evidence.summary,
            details=evidence.details,
        )
    ]
    if rule.retrain:
        emissions.append(
            _emit(
                firing,
                "retrain.requested",
                result,
                severity=rule.severity,
                summary=f"retraining requested by rule {rule.name!r}: {evidence.summary}",
                details={**retrain_details(result), "trigger": dict(evidence.details)},
            )
        )
    return firing, emissions


def _check_order(state: RuleState, result: WindowResult) -> None:
    if state.last_window_end is not None and result.window_end <= state.last_window_end:
        raise WindowOrderError(
            f"model {state.model!r}, rule {state.rule!r}, subject {state.subject!r}: "
            f"window ending {result.window_end} does not end after the last window fed "
            f"({state.last_window_end}); windows must be fed once each, in event-time order"
        )


def _cleared(state: RuleState, *, consecutive_clean: int) -> RuleState:
    return replace(
        state,
        status="ok",
        consecutive_breaches=0,
        consecutive_clean=consecutive_clean,
        streak_started=None,
        incident=None,
        incident_started=None,
        severity=None,
        last_notified_window_end=None,
        sequence=0,
    )


def resolve(state: RuleState, reason: str) -> tuple[RuleState, list[Emission]]:
    """Resolve the state from outside (``reason`` such as ``"model_replaced"``).

    Returns the cleared state and, if it was firing, one ``alert.resolved``
    for the latest window it saw; a pending or ok state is cleared silently.
    """
    cleared = _cleared(state, consecutive_clean=0)
    if state.status != "firing":
        return cleared, []
    assert state.incident is not None
    assert state.last_window_start is not None
    assert state.last_window_end is not None
    emission = Emission(
        type="alert.resolved",
        model=state.model,
        rule=state.rule,
        subject=state.subject,
        incident=state.incident,
        sequence=0,
        severity=state.severity or "info",
        window_start=state.last_window_start,
        window_end=state.last_window_end,
        summary=f"resolved: {reason.replace('_', ' ')}",
        details={"reason": reason},
    )
    return cleared, [emission]


class RuleEngine:
    """Runs a model's rules over its windows, one window at a time, from and to stored states."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        """Keep the enabled ``rules`` (names must be unique), in their configured order."""
        names = [r.name for r in rules]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"rules: duplicate rule names {duplicates}")
        self.rules: tuple[Rule, ...] = tuple(r for r in rules if r.enabled)

    def step(
        self, states: Mapping[StateKey, RuleState], result: WindowResult
    ) -> tuple[dict[StateKey, RuleState], list[Emission]]:
        """Feed one window to every rule and subject; return all states after it and the emissions.

        States of other models, and of rules not in force, are returned
        unchanged. A subject with a state but no verdict in this window (a
        feature no longer in the drift report) is unknown. Emissions are in
        rule order, then subject order. Raises :class:`WindowOrderError` (and
        changes nothing) when the window does not end after a state's last window.
        """
        names = {r.name for r in self.rules}
        for state in states.values():
            if state.model == result.model and state.rule in names:
                _check_order(state, result)
        updated = dict(states)
        emissions: list[Emission] = []
        for rule in self.rules:
            verdicts = evaluate_rule(rule, result)
            subjects = set(verdicts) | {
                s.subject
                for s in states.values()
                if s.model == result.model and s.rule == rule.name
            }
            for subject in sorted(subjects):
                key = (result.model, rule.name, subject)
                state = updated.get(key) or RuleState(
                    model=result.model, rule=rule.name, subject=subject
                )
                verdict = verdicts.get(subject) or Verdict.unknown("subject not in this window")
                updated[key], emitted = advance(state, rule, verdict, result)
                emissions.extend(emitted)
        return updated, emissions

    def resolve_model(
        self, states: Mapping[StateKey, RuleState], model: str, reason: str
    ) -> tuple[dict[StateKey, RuleState], list[Emission]]:
        """Resolve every state of ``model`` (reason e.g. ``"model_replaced"``) with resolve()."""
        updated = dict(states)
        emissions: list[Emission] = []
        for key in sorted(k for k, s in states.items() if s.model == model):
            updated[key], emitted = resolve(states[key], reason)
            emissions.extend(emitted)
        return updated, emissions

    def retired(self, states: Mapping[StateKey, RuleState], model: str) -> list[StateKey]:
        """Return the keys of ``model``'s states whose rule is no longer in force (to resolve)."""
        names = {r.name for r in self.rules}
        return sorted(k for k, s in states.items() if s.model == model and s.rule not in names)


def states_to_json(states: Iterable[RuleState]) -> bytes:
    """Return the states as one JSON array (sorted by key, so equal states give equal bytes)."""
    return orjson.dumps([s.to_json() for s in sorted(states, key=lambda s: s.key)])


def states_from_json(data: bytes | str) -> dict[StateKey, RuleState]:
    """Return the states :func:`states_to_json` stored, keyed by (model, rule, subject)."""
    loaded = orjson.loads(data)
    if not isinstance(loaded, list):
        raise ValueError(f"rule states: a JSON array expected; got {type(loaded).__name__}")
    states: dict[StateKey, RuleState] = {}
    for i, item in enumerate(loaded):
        if not isinstance(item, dict):
            raise ValueError(f"rule states[{i}]: a JSON object expected; got {item!r}")
        state = RuleState.from_json(item)
        states[state.key] = state
    return states


__all__ = [
    "Emission",
    "RuleEngine",
    "RuleState",
    "RuleStatus",
    "StateKey",
    "WindowOrderError",
    "advance",
    "incident_id",
    "resolve",
    "retrain_details",
    "states_from_json",
    "states_to_json",
]

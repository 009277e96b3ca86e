"""The incident state machine over scripted window sequences."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from alerts.engine import (
    Emission,
    RuleEngine,
    RuleState,
    StateKey,
    WindowOrderError,
    advance,
    incident_id,
    resolve,
    states_from_json,
    states_to_json,
)
from alerts.events import AlertEvent, EventType, event_id
from alerts.retrain import RetrainRequest
from alerts.rules import (
    DriftShareRule,
    FeatureDriftRule,
    QualityRule,
    Rule,
    Verdict,
    default_rules,
    evaluate_rule,
)
from detectors.attribution import DriftImpact
from detectors.window_result import MeasuredQuality, WindowResult
from tests.alerts.test_rules import HOUR, T0, window

BREACH = ["age", "income", "region"]  # dataset drift: 3 of 4 features
CLEAN: list[str] = []
UNKNOWN = None  # a window with insufficient data


def windows(script: Sequence[list[str] | None], start: int = 0) -> list[WindowResult]:
    """Hourly windows: a list of drifted features each, None for an insufficient-data window."""
    return [
        window(start + i, drifted=d)
        if d is not None
        else window(start + i, status="insufficient_data")
        for i, d in enumerate(script)
    ]


def run(
    rules: Sequence[Rule],
    results: Sequence[WindowResult],
    states: dict[StateKey, RuleState] | None = None,
) -> tuple[dict[StateKey, RuleState], list[list[Emission]]]:
    """Feed the windows in order; return the final states and each window's emissions."""
    engine = RuleEngine(rules)
    current = states or {}
    per_window = []
    for result in results:
        current, emitted = engine.step(current, result)
        per_window.append(emitted)
    return current, per_window


def kinds(per_window: list[list[Emission]]) -> list[list[str]]:
    """Each window's emission types with their sequence (``drift.detected#1``)."""
    return [[f"{e.type}#{e.sequence}" if e.sequence else e.type for e in w] for w in per_window]


SHARE = DriftShareRule()  # fire_after 2, resolve_after 2, repeat every 6 hours
KEY = ("credit-risk", "drift_share", "")


def test_fires_after_consecutive_breaches() -> None:
    states, per_window = run([SHARE], windows([CLEAN, BREACH, BREACH, BREACH]))
    assert kinds(per_window) == [[], [], ["drift.detected"], []]
    (fired,) = per_window[2]
    assert fired.incident == "2026-11-22T09:00:00Z" == incident_id(T0 + HOUR)
    assert (fired.model, fired.rule, fired.subject, fired.severity) == (
        "credit-risk",
        "drift_share",
        "",
        "critical",
    )
    assert (fired.window_start, fired.window_end) == (T0 + 2 * HOUR, T0 + 3 * HOUR)
    assert fired.summary.startswith("drift share 75% (threshold 50%): 3 of 4 features drifted")
    state = states[KEY]
    assert (state.status, state.consecutive_breaches, state.incident_started) == (
        "firing",
        3,
        T0 + HOUR,
    )
    assert state.last_window_end == T0 + 4 * HOUR


def test_one_noisy_window_does_not_fire() -> None:
    states, per_window = run([SHARE], windows([BREACH, CLEAN, CLEAN, BREACH, CLEAN]))
    assert kinds(per_window) == [[]] * 5
    assert states[KEY].status == "ok"
    pending, _ = run([SHARE], windows([BREACH]))
    assert pending[KEY].status == "pending"


def test_hovering_value_never_fires_and_never_flaps() -> None:
    hovering = [BREACH, CLEAN] * 20
    _, per_window = run([SHARE], windows(hovering))
    assert all(not w for w in per_window)
    # Once firing, hovering neither resolves nor fires a second incident.
    states, per_window = run([SHARE], windows([BREACH, BREACH, *hovering]))
    emitted = [e for w in per_window for e in w]
    assert [e.type for e in emitted][:1] == ["drift.detected"]
    assert all(e.type == "drift.detected" for e in emitted)
    assert {e.incident for e in emitted} == {incident_id(T0)}
    assert states[KEY].status == "firing"


def test_repeats_while_firing_at_most_every_interval() -> None:
    states, per_window = run([SHARE], windows([BREACH] * 16))
    emitted = [(e.type, e.sequence, e.window_end) for w in per_window for e in w]
    assert emitted == [
        ("drift.detected", 0, T0 + 2 * HOUR),
        ("drift.detected", 1, T0 + 8 * HOUR),
        ("drift.detected", 2, T0 + 14 * HOUR),
    ]
    assert all(e.summary.startswith("still firing: ") for w in per_window for e in w if e.sequence)
    assert states[KEY].sequence == 2
    # A clean window in between does not remind; the next breach does once the interval passed.
    _, per_window = run([SHARE], windows([BREACH, BREACH, *[CLEAN, BREACH] * 3, CLEAN, BREACH]))
    assert [(e.sequence, e.window_end) for w in per_window for e in w] == [
        (0, T0 + 2 * HOUR),
        (1, T0 + 8 * HOUR),
    ]


def test_resolves_after_consecutive_clean_windows() -> None:
    script = [BREACH, BREACH, CLEAN, BREACH, CLEAN, CLEAN, CLEAN, BREACH, BREACH]
    states, per_window = run([SHARE], windows(script))
    assert kinds(per_window) == [
        [],
        ["drift.detected"],
        [],
        [],
        [],
        ["alert.resolved"],
        [],
        [],
        ["drift.detected"],
    ]
    resolved = per_window[5][0]
    assert resolved.incident == incident_id(T0)
    assert resolved.severity == "critical"
    assert resolved.details["reason"] == "clean"
    assert resolved.summary.startswith("resolved after 2 clean windows: ")
    second = per_window[8][0]
    assert second.incident == incident_id(T0 + 7 * HOUR) != resolved.incident
    assert states[KEY].incident == second.incident


def test_unknown_windows_change_no_counter() -> None:
    # breach, unknown, breach: two consecutive breaches.
    _, per_window = run([SHARE], windows([BREACH, UNKNOWN, BREACH]))
    assert kinds(per_window) == [[], [], ["drift.detected"]]
    # Firing, then only unknown windows for a day: no resolution, no reminder.
    states, per_window = run([SHARE], windows([BREACH, BREACH, *[UNKNOWN] * 24]))
    assert kinds(per_window)[2:] == [[]] * 24
    assert states[KEY].status == "firing"
    assert states[KEY].last_window_end == T0 + 26 * HOUR
    # clean, unknown, clean resolves; unknown alone never fires.
    _, per_window = run([SHARE], windows([BREACH, BREACH, CLEAN, UNKNOWN, CLEAN]))
    assert kinds(per_window)[2:] == [[], [], ["alert.resolved"]]
    states, per_window = run([SHARE], windows([UNKNOWN] * 5))
    assert all(not w for w in per_window)
    assert states[KEY] == RuleState(
        model="credit-risk",
        rule="drift_share",
        subject="",
        last_window_start=T0 + 4 * HOUR,
        last_window_end=T0 + 5 * HOUR,
    )


def test_window_out_of_order_or_repeated_is_rejected() -> None:
    engine = RuleEngine([SHARE])
    first, second = windows([BREACH, BREACH])
    states, _ = engine.step({}, second)
    with pytest.raises(WindowOrderError, match="does not end after the last window fed"):
        engine.step(states, first)
    with pytest.raises(WindowOrderError, match="in event-time order"):
        engine.step(states, second)  # re-evaluated window fed again
    state = states[KEY]
    with pytest.raises(WindowOrderError):
        advance(state, SHARE, evaluate_rule(SHARE, first)[""], first)
    # Other models' states do not constrain this model.
    other = window(0, model="fraud", drifted=BREACH)
    assert engine.step(states, other)[0][KEY] == state


def test_retrain_is_requested_once_per_incident() -> None:
    rule = DriftShareRule(retrain=True)
    impact = (
        DriftImpact(name="income", statistic=0.3, importance=0.5, impact=0.15),
        DriftImpact(name="age", statistic=0.3, importance=0.1, impact=0.03),
    )
    results = [
        window(i, drifted=d or [], drift_impact=impact)
        for i, d in enumerate([BREACH] * 14 + [CLEAN, CLEAN] + [BREACH] * 2)
    ]
    _, per_window = run([rule], results)
    assert kinds(per_window)[1] == ["drift.detected", "retrain.requested"]
    retrains = [e for w in per_window for e in w if e.type == "retrain.requested"]
    assert len(retrains) == 2
    assert len({e.incident for e in retrains}) == 2
    assert sum(e.type == "drift.detected" for w in per_window for e in w) == 4  # 2 fires, 2 repeats
    details = retrains[0].details
    assert [f["name"] for f in details["features"]] == ["income", "age", "region"]
    assert details["impact_source"] == "drift_impact"
    assert details["trigger"]["drift_share"] == 0.75
    # The details are what alerts.retrain reads a retrain request from.
    request = RetrainRequest.from_event(to_event(retrains[0]))
    assert [f.name for f in request.features] == ["income", "age", "region"]


def to_event(emission: Emission) -> AlertEvent:
    """The AlertEvent the service makes of an emission."""
    return AlertEvent(
        id=event_id(
            emission.model,
            emission.rule,
            emission.subject,
            emission.incident,
            emission.type,
            emission.sequence,
        ),
        type=EventType(emission.type),
        model=emission.model,
        window_start=emission.window_start,
        window_end=emission.window_end,
        severity=emission.severity,
        rule=emission.rule,
        subject=emission.subject,
        incident=emission.incident,
        summary=emission.summary,
        details=emission.details,
        created_at=emission.window_end + 60,
    )


def test_incidents_and_event_ids_are_deterministic() -> None:
    script = [BREACH, BREACH, *[BREACH] * 7, CLEAN, CLEAN, BREACH, BREACH]
    rules = [*default_rules(), DriftShareRule(name="share_retrain", retrain=True)]
    _, first = run(rules, windows(script))
    _, second = run(rules, windows(script))
    assert first == second
    ids = [to_event(e).id for w in first for e in w]
    assert ids == [to_event(e).id for w in second for e in w]
    assert len(ids) == len(set(ids))


def test_state_json_round_trip_continues_identically() -> None:
    rules = [*default_rules(), DriftShareRule(name="share_retrain", retrain=True)]
    script = [BREACH, BREACH, UNKNOWN, CLEAN, BREACH, *[BREACH] * 8, CLEAN, CLEAN, CLEAN]
    results = windows(script)
    _, straight = run(rules, results)
    states, head = run(rules, results[:6])
    stored = states_to_json(states.values())
    restored = states_from_json(stored)
    assert restored == states
    assert states_to_json(restored.values()) == stored
    _, tail = run(rules, results[6:], restored)
    assert head + tail == straight
    firing = next(s for s in states.values() if s.status == "firing")
    assert RuleState.from_json(firing.to_json()) == firing


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": "burning"}, "status"),
        ({"sequence": -1}, "sequence"),
        ({"consecutive_clean": True}, "consecutive_clean"),
        ({"last_window_end": "yesterday"}, "last_window_end"),
        ({"severity": "page"}, "severity"),
        ({"colour": "red"}, "colour"),
        ({"model": None}, "model"),
    ],
)
def test_invalid_stored_state_names_the_field(change: dict[str, object], field: str) -> None:
    data = RuleState(model="m", rule="r", subject="").to_json() | change
    with pytest.raises(ValueError, match=field):
        RuleState.from_json(data)


def test_per_feature_incidents_are_independent() -> None:
    results = [
        window(0, drifted=["income"]),
        window(1, drifted=["income", "age"]),
        window(2, drifted=["age"]),
        window(3, drifted=["age"]),
        window(4, drifted=[]),
        window(5, drifted=[]),
    ]
    states, per_window = run([FeatureDriftRule()], results)
    emitted = [(e.type, e.subject, e.incident) for w in per_window for e in w]
    assert emitted == [
        ("drift.detected", "income", incident_id(T0)),
        ("drift.detected", "age", incident_id(T0 + HOUR)),
        ("alert.resolved", "income", incident_id(T0)),
        ("alert.resolved", "age", incident_id(T0 + HOUR)),
    ]
    assert next(e.summary for w in per_window for e in w) == "income drifted (ks=0.3, p=1e-09)"
    assert {k[2] for k in states} == {"age", "income", "region", "tenure"}


def test_a_feature_leaving_the_report_keeps_its_incident_open() -> None:
    from tests.alerts.test_rules import drift_report

    results = [
        window(0, drifted=["income"]),
        window(1, drifted=["income"]),
        window(2, drift=drift_report(features=("age", "region"))),
        window(3, drift=drift_report(features=("age", "region"))),
    ]
    states, per_window = run([FeatureDriftRule()], results)
    assert kinds(per_window) == [[], ["drift.detected"], [], []]
    assert states[("credit-risk", "feature_drift", "income")].status == "firing"
    assert states[("credit-risk", "feature_drift", "income")].last_window_end == T0 + 4 * HOUR


def test_quality_fires_on_the_first_window() -> None:
    rule = QualityRule(metric="accuracy", threshold=0.8)
    results = [
        window(i, quality=MeasuredQuality(metrics={"accuracy": a}) if a else MeasuredQuality())
        for i, a in enumerate([0.9, 0.7, None, 0.85, 0.86])
    ]
    _, per_window = run([rule], results)
    assert kinds(per_window) == [[], ["quality.degraded"], [], [], ["alert.resolved"]]
    assert per_window[1][0].summary == "measured accuracy 0.7 is below 0.8"


def test_external_resolution() -> None:
    states, _ = run([SHARE, FeatureDriftRule()], windows([BREACH, BREACH]))
    firing = states[KEY]
    cleared, emitted = resolve(firing, "model_replaced")
    (event,) = emitted
    assert (event.type, event.incident, event.severity) == (
        "alert.resolved",
        incident_id(T0),
        "critical",
    )
    assert event.details == {"reason": "model_replaced"}
    assert event.summary == "resolved: model replaced"
    assert (event.window_start, event.window_end) == (T0 + HOUR, T0 + 2 * HOUR)
    assert (cleared.status, cleared.incident, cleared.last_window_end) == (
        "ok",
        None,
        T0 + 2 * HOUR,
    )
    to_event(event)  # a valid AlertEvent
    assert resolve(RuleState(model="m", rule="r", subject="", status="pending"), "x")[1] == []

    engine = RuleEngine([SHARE, FeatureDriftRule()])
    after, emitted = engine.resolve_model(states, "credit-risk", "model_replaced")
    assert [(e.rule, e.subject) for e in emitted] == [
        ("drift_share", ""),
        ("feature_drift", "age"),
        ("feature_drift", "income"),
        ("feature_drift", "region"),
    ]
    assert all(s.status == "ok" for s in after.values())
    assert RuleEngine([SHARE]).retired(states, "credit-risk") == sorted(
        k for k in states if k[1] == "feature_drift"
    )


def test_disabled_rules_and_duplicate_names() -> None:
    states, per_window = run([DriftShareRule(enabled=False)], windows([BREACH] * 3))
    assert states == {}
    assert all(not w for w in per_window)
    with pytest.raises(ValueError, match="duplicate rule names"):
        RuleEngine([SHARE, DriftShareRule(threshold=0.2)])


def test_advance_on_a_single_state() -> None:
    state = RuleState(model="credit-risk", rule="drift_share", subject="")
    result = window(0, drifted=BREACH)
    after, emitted = advance(
        state, SHARE.model_copy(update={"fire_after": 1}), evaluate_rule(SHARE, result)[""], result
    )
    assert [e.type for e in emitted] == ["drift.detected"]
    assert after.status == "firing"
    unknown, nothing = advance(after, SHARE, Verdict.unknown("no data"), window(1))
    assert nothing == []
    assert unknown == RuleState(
        **{**after.to_json(), "last_window_start": T0 + HOUR, "last_window_end": T0 + 2 * HOUR}
    )

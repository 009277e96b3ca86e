"""Backtests replay rules over a stored window history."""

from __future__ import annotations

import dataclasses
import random

import pytest

from alerts.backtest import RuleCounts, backtest
from alerts.engine import incident_id
from alerts.rules import DriftShareRule, FeatureDriftRule, JointDriftRule, QualityRule, Rule
from detectors.window_result import MeasuredQuality, WindowResult
from tests.alerts.test_rules import HOUR, T0, window

B = ["age", "income", "region"]  # dataset drift
C: list[str] = []
SCRIPT = [C, B, B, B, B, B, B, B, B, B, C, C, B, C, B, C, None, B, B]


def history() -> list[WindowResult]:
    """The scripted hourly windows (None: insufficient data)."""
    return [
        window(i, drifted=d) if d is not None else window(i, status="insufficient_data")
        for i, d in enumerate(SCRIPT)
    ]


def test_counts_and_emissions() -> None:
    rules: list[Rule] = [
        DriftShareRule(retrain=True),
        FeatureDriftRule(feature="tenure"),
        JointDriftRule(),
    ]
    report = backtest(rules, history())
    assert report.windows == len(SCRIPT)
    share = report.counts_for("drift_share")
    assert share == RuleCounts(
        model="credit-risk",
        rule="drift_share",
        windows=19,
        windows_breaching=13,
        windows_unknown=1,
        fired=2,
        repeats=1,
        resolved=1,
        retrain=2,
    )
    assert [(e.type, e.sequence, e.window_end) for e in report.emissions] == [
        ("drift.detected", 0, T0 + 3 * HOUR),
        ("retrain.requested", 0, T0 + 3 * HOUR),
        ("drift.detected", 1, T0 + 9 * HOUR),
        ("alert.resolved", 0, T0 + 12 * HOUR),
        ("drift.detected", 0, T0 + 19 * HOUR),
        ("retrain.requested", 0, T0 + 19 * HOUR),
    ]
    assert report.emissions[0].incident == incident_id(T0 + HOUR)
    assert report.emissions[-1].incident == incident_id(T0 + 17 * HOUR)
    assert report.states[("credit-risk", "drift_share", "")].status == "firing"
    tenure = report.counts_for("feature_drift.tenure")
    assert (tenure.windows_breaching, tenure.windows_unknown, tenure.fired) == (0, 1, 0)
    joint = report.counts_for("joint_drift")
    assert (joint.windows_unknown, joint.fired) == (19, 0)


def test_order_of_the_input_does_not_matter() -> None:
    rules: list[Rule] = [DriftShareRule(), FeatureDriftRule()]
    ordered = backtest(rules, history())
    shuffled = history()
    random.Random(3).shuffle(shuffled)
    assert backtest(rules, shuffled) == ordered
    assert backtest(rules, iter(shuffled)) == ordered  # any iterable


def test_latest_evaluation_of_a_window_wins() -> None:
    rule = QualityRule(metric="accuracy", threshold=0.8)
    first = window(
        0, quality=MeasuredQuality(metrics={"accuracy": 0.9}), evaluated_at=T0 + 2 * HOUR
    )
    late_labels = dataclasses.replace(
        first, quality=MeasuredQuality(metrics={"accuracy": 0.5}), evaluated_at=T0 + 5 * HOUR
    )
    for results in ([first, late_labels], [late_labels, first]):
        report = backtest([rule], results)
        assert report.windows == 1
        assert report.counts_for("quality.accuracy").fired == 1


def test_several_models_and_disabled_rules() -> None:
    results = [*history(), *(window(i, drifted=B, model="fraud") for i in range(3))]
    report = backtest([DriftShareRule(), JointDriftRule(enabled=False)], results)
    assert [(c.model, c.rule) for c in report.counts] == [
        ("credit-risk", "drift_share"),
        ("fraud", "drift_share"),
    ]
    assert report.counts_for("drift_share", "fraud").fired == 1
    with pytest.raises(KeyError):
        report.counts_for("drift_share")  # two models: say which
    assert backtest([DriftShareRule()], []).counts == ()

"""Prometheus rule export, checked and unit-tested by the real ``promtool``.

``promtool`` comes with Debian's ``prometheus`` package (``make servers``);
without it the promtool tests skip, and fail under ``CI=true``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.prometheus_rules import duration, export_rules, rule_expression
from alerts.rules import (
    AttributionDriftRule,
    ChangePointRule,
    DataQualityRule,
    DriftShareRule,
    EstimatedQualityRule,
    FeatureDriftRule,
    JointDriftRule,
    PredictionDriftRule,
    QualityRule,
    Rule,
    default_rules,
)
from tests.servers import skip_or_fail

EVERY_KIND: list[Rule] = [
    *default_rules(),
    FeatureDriftRule(feature='odd "feature" \\ name'),
    FeatureDriftRule(min_features=3),
    FeatureDriftRule(name="any_feature", per_feature=False),
    DriftShareRule(name="share_30", threshold=0.3, resolve_after=1),
    PredictionDriftRule(name="prediction_score", threshold=0.2),
    QualityRule(metric="accuracy", threshold=0.8),
    QualityRule(metric="mae", threshold=2.5),
    EstimatedQualityRule(metric="roc_auc", threshold=0.7),
    JointDriftRule(),
    AttributionDriftRule(),
    ChangePointRule(),
    JointDriftRule(name="joint_off", enabled=False),
]


def promtool() -> str:
    """The promtool binary, or skip (fail under CI=true)."""
    found = shutil.which("promtool") or (
        "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
    )
    if found is None:
        skip_or_fail("promtool not installed (Debian package prometheus; run `make servers`)")
    return found


def run_promtool(*args: str, cwd: Path) -> str:
    """Run promtool; fail the test with its output unless it succeeds."""
    done = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def by_rule(text: str) -> dict[str, dict[str, Any]]:
    """The exported alerting rules keyed by their ``rule`` label."""
    groups = yaml.safe_load(text)["groups"]
    return {r["labels"]["rule"]: r for g in groups for r in g["rules"]}


def test_missing_promtool_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "exists", lambda self: False)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        promtool()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="promtool not installed"):
        promtool()


def test_duration() -> None:
    assert [duration(s) for s in (0, 0.25, 59, 60, 90, 3600, 5400, 86400 + 1.5)] == [
        "0s",
        "250ms",
        "59s",
        "1m",
        "1m30s",
        "1h",
        "1h30m",
        "1d1s500ms",
    ]
    with pytest.raises(ValueError, match="duration"):
        duration(-1)


def test_expressions_timing_and_labels() -> None:
    text = export_rules(
        {"credit-risk": EVERY_KIND}, {"credit-risk": 3600}, drift_share={"credit-risk": 0.4}
    )
    rules = by_rule(text)
    assert set(rules) == {
        "feature_drift",
        "drift_share",
        "feature_drift.odd_feature_name",
        "feature_drift.min_3",
        "any_feature",
        "share_30",
        "prediction_score",
        "quality.accuracy",
        "quality.mae",
        "estimated_quality.roc_auc",
        "joint_drift",
    }
    share = rules["drift_share"]
    assert share["expr"] == 'driftline_dataset_drift_share{model="credit-risk"} >= 0.4'
    assert (share["for"], share["keep_firing_for"]) == ("1h", "1h")
    assert share["labels"] == {
        "severity": "critical",
        "model": "credit-risk",
        "rule": "drift_share",
    }
    assert share["alert"] == "DriftlineDriftShare"
    assert "keep_firing_for" not in rules["share_30"]
    assert rules["feature_drift"]["expr"] == (
        'driftline_feature_drift_detected{model="credit-risk"} == 1'
    )
    assert rules["feature_drift.odd_feature_name"]["expr"] == (
        'driftline_feature_drift_detected{model="credit-risk",'
        'feature="odd \\"feature\\" \\\\ name"} == 1'
    )
    assert rules["feature_drift.min_3"]["expr"] == (
        'sum by (model) (driftline_feature_drift_detected{model="credit-risk"}) >= 3'
    )
    assert rules["quality.accuracy"]["expr"] == (
        'driftline_model_quality{model="credit-risk",metric="accuracy"} < 0.8'
    )
    assert rules["quality.accuracy"]["for"] == "0s"  # fire_after 1: the first window fires
    assert rules["quality.mae"]["expr"].endswith("> 2.5")
    assert rules["estimated_quality.roc_auc"]["expr"].startswith(
        "driftline_model_quality_estimated{"
    )
    assert rules["prediction_score"]["expr"] == (
        'driftline_prediction_drift_score{model="credit-risk"} >= 0.2'
    )
    comments = [line for line in text.splitlines() if line.startswith("#")]
    for name in (
        "prediction_drift",
        "data_quality",
        "attribution_drift",
        "change_point",
        "joint_off",
    ):
        assert any(f"rule {name!r}" in line for line in comments), name
    assert rule_expression(DataQualityRule(), "m") is None


def test_promtool_accepts_every_kind(tmp_path: Path) -> None:
    text = export_rules(
        {"credit-risk": EVERY_KIND, "fraud": default_rules()},
        {"credit-risk": 3600, "fraud": 900.5},
    )
    (tmp_path / "rules.yml").write_text(text)
    output = run_promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert "SUCCESS: 13 rules found" in output


def test_promtool_alerts_fire_after_for_and_resolve_after_keep_firing_for(tmp_path: Path) -> None:
    rules: list[Rule] = [
        DriftShareRule(),  # fire_after 2, resolve_after 2
        FeatureDriftRule(),
        QualityRule(metric="accuracy", threshold=0.8),  # fire_after 1
    ]
    (tmp_path / "rules.yml").write_text(export_rules({"m": rules}, {"m": 60}))
    # One sample per one-minute window: what the service exports at each window's evaluation.
    share = "driftline_dataset_drift_share"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'{share}{{model="m"}}', "values": "0.1 0.6 0.6 0.6 0.1 0.1 0.1"},
                    {
                        "series": 'driftline_feature_drift_detected{model="m",feature="income"}',
                        "values": "0 1 1 1 1 1 1",
                    },
                    {
                        "series": 'driftline_feature_drift_detected{model="m",feature="age"}',
                        "values": "0 1 0 1 0 1 0",  # hovering: never fires
                    },
                    {
                        "series": 'driftline_model_quality{model="m",metric="accuracy"}',
                        "values": "0.9 0.7 0.9 0.9 0.9 0.9 0.9",
                    },
                ],
                "alert_rule_test": [
                    *(
                        {"eval_time": t, "alertname": "DriftlineDriftShare", "exp_alerts": []}
                        for t in ("0m", "1m", "5m")  # one breaching window: pending only
                    ),
                    *(
                        {
                            "eval_time": t,
                            "alertname": "DriftlineDriftShare",
                            "exp_alerts": [
                                {
                                    "exp_labels": {
                                        "model": "m",
                                        "rule": "drift_share",
                                        "severity": "critical",
                                    },
                                    "exp_annotations": {
                                        "summary": f"Dataset drift share of model m is {value}"
                                    },
                                }
                            ],
                        }
                        # keep_firing_for holds it (and its last value) through one clean window
                        for t, value in (("2m", "0.6"), ("3m", "0.6"), ("4m", "0.6"))
                    ),
                    {
                        "eval_time": "6m",
                        "alertname": "DriftlineFeatureDrift",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "model": "m",
                                    "feature": "income",
                                    "rule": "feature_drift",
                                    "severity": "warning",
                                },
                                "exp_annotations": {"summary": "Feature income of model m drifted"},
                            }
                        ],
                    },
                    {
                        "eval_time": "1m",
                        "alertname": "DriftlineQualityAccuracy",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "model": "m",
                                    "metric": "accuracy",
                                    "rule": "quality.accuracy",
                                    "severity": "warning",
                                },
                                "exp_annotations": {
                                    "summary": "Measured accuracy of model m is 0.7 (below 0.8)"
                                },
                            }
                        ],
                    },
                    {"eval_time": "3m", "alertname": "DriftlineQualityAccuracy", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    output = run_promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert "SUCCESS" in output

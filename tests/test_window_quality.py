"""Window quality in the service (monitor/analyses/quality.py, references: analyses/model.py).

Measured quality must equal scikit-learn's metrics on the same joined rows
(ROC AUC and average precision within the reported histogram bounds), the
estimate must equal ``CBPE.estimate`` on the same scores, and a stored
reference must carry its fitted estimator while old profile rows stay
readable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from detectors.performance import CBPE
from detectors.profile import ReferenceProfile
from monitor.analyses.model import ESTIMATOR_KEY, ModelRuntime, StoredReference
from monitor.analyses.quality import estimated_metrics, estimated_performance, model_quality
from monitor.analyses.reference import build_reference
from monitor.config.service import ModelConfig, PredictionSection
from monitor.labels import stored_label
from monitor.store.result_json import estimated_performance_from_json, estimated_performance_json
from monitor.store.rows import JoinedPrediction


def classifier_rows(rows: int, seed: int = 0) -> tuple[list[JoinedPrediction], np.ndarray]:
    """Joined rows of a calibrated binary classifier ("default" vs "repaid"), and the scores."""
    rng = np.random.default_rng(seed)
    scores = rng.beta(2.0, 3.0, rows)
    truth = np.where(rng.random(rows) < scores, "default", "repaid")
    predicted = np.where(scores >= 0.5, "default", "repaid")
    joined = [
        JoinedPrediction(str(p), float(s), str(t))
        for p, s, t in zip(predicted, scores, truth, strict=True)
    ]
    return joined, scores


def ece(y: np.ndarray, p: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error on the bins of calibration_curve(strategy="uniform")."""
    index = np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], p, side="left")
    total = 0.0
    for b in range(bins):
        inside = index == b
        total += abs(p[inside].sum() - y[inside].sum())
    return total / len(p)


def test_classification_quality_equals_scikit_learn() -> None:
    joined, scores = classifier_rows(3000)
    result = model_quality(PredictionSection(field="label", positive_label="default"), joined)
    y_true = [j.label for j in joined]
    y_pred = [j.predicted_label for j in joined]
    y = np.array([t == "default" for t in y_true], dtype=float)
    m = result.metrics
    expected = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "macro_precision": skm.precision_score(y_true, y_pred, average="macro"),
        "macro_recall": skm.recall_score(y_true, y_pred, average="macro"),
        "macro_f1": skm.f1_score(y_true, y_pred, average="macro"),
        "precision": skm.precision_score(y_true, y_pred, pos_label="default"),
        "recall": skm.recall_score(y_true, y_pred, pos_label="default"),
        "f1": skm.f1_score(y_true, y_pred, pos_label="default"),
        "log_loss": skm.log_loss(y, scores),
        "brier_score": skm.brier_score_loss(y, scores),
        "expected_calibration_error": ece(y, scores),
    }
    for name, value in expected.items():
        assert m[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    report = result.report
    assert abs(m["roc_auc"] - skm.roc_auc_score(y, scores)) <= report["roc_auc_bound"] + 1e-12
    assert report["roc_auc_bound"] < 1e-3
    assert (
        abs(m["average_precision"] - skm.average_precision_score(y, scores))
        <= report["average_precision_bound"] + 1e-12
    )
    assert (report["task"], report["rows"], report["scored_rows"]) == ("classification", 3000, 3000)
    assert report["positive_label"] == "default"
    assert report["metrics"] == m


def test_rows_without_a_predicted_label_count_only_for_the_score_metrics() -> None:
    joined, scores = classifier_rows(400, seed=1)
    joined[:100] = [j._replace(predicted_label=None) for j in joined[:100]]
    result = model_quality(PredictionSection(field="score", positive_label="default"), joined)
    y_true = [j.label for j in joined[100:]]
    y_pred = [j.predicted_label for j in joined[100:]]
    assert result.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    y = np.array([j.label == "default" for j in joined], dtype=float)
    assert result.metrics["brier_score"] == pytest.approx(skm.brier_score_loss(y, scores))
    assert (result.report["predicted_rows"], result.report["scored_rows"]) == (300, 400)


def test_the_positive_class_is_inferred_from_0_1_labels_or_taken_from_the_estimator() -> None:
    # The store keeps str(value): a label record's 1.0 is "1.0", a predicted True is "True".
    joined = [
        JoinedPrediction("1", 0.9, "1.0"),
        JoinedPrediction("0", 0.2, "0"),
        JoinedPrediction("1", 0.6, "0"),
        JoinedPrediction("0", 0.4, "1"),
    ]
    result = model_quality(PredictionSection(field="label"), joined)
    assert result.report["positive_label"] == "1"
    assert result.metrics["accuracy"] == 0.5  # "1.0" matches "1"
    assert result.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score([1, 0, 0, 1], [0.9, 0.2, 0.6, 0.4])
    )

    words = [JoinedPrediction("yes", 0.8, "yes"), JoinedPrediction("no", 0.3, "yes")]
    assert "roc_auc" not in model_quality(PredictionSection(field="label"), words).metrics
    estimator = CBPE.fit(["yes", "no"] * 50, [0.8, 0.3] * 50, "yes", calibration="none")
    with_estimator = model_quality(PredictionSection(field="label"), words, estimator=estimator)
    assert with_estimator.report["positive_label"] == "yes"
    assert "log_loss" in with_estimator.metrics
    # One class only: ROC AUC is undefined and left out, not NaN.
    assert "roc_auc" not in with_estimator.metrics


def test_stored_labels_compare_as_canonical_labels() -> None:
    assert [stored_label(t) for t in ("True", "False", "3.0", "-1.0", "2.5", "1.0e3", "EU")] == [
        "true",
        "false",
        "3",
        "-1",
        "2.5",
        "1.0e3",
        "EU",
    ]


def test_regression_quality_equals_scikit_learn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(100, 20, 500)
    f = y + rng.normal(1.0, 5.0, 500)
    joined = [JoinedPrediction(None, float(p), str(t)) for p, t in zip(f, y, strict=True)]
    joined += [JoinedPrediction(None, 1.0, "not a number"), JoinedPrediction(None, None, "3")]
    result = model_quality(PredictionSection(field="score"), joined)
    expected = {
        "mae": skm.mean_absolute_error(y, f),
        "rmse": skm.root_mean_squared_error(y, f),
        "mape": skm.mean_absolute_percentage_error(y, f),
        "r2": skm.r2_score(y, f),
        "mean_error": float(np.mean(f - y)),
    }
    assert result.metrics.keys() == expected.keys()
    for name, value in expected.items():
        assert result.metrics[name] == pytest.approx(value, rel=1e-9), name
    assert (result.report["rows"], result.report["skipped_rows"]) == (502, 2)


def test_no_labels_no_quality() -> None:
    assert model_quality(PredictionSection(field="label"), []).metrics == {}
    one = model_quality(PredictionSection(), [JoinedPrediction(None, 2.0, "3")])
    assert "r2" not in one.metrics  # undefined for one row: left out
    assert one.metrics["mae"] == 1.0


def test_the_estimate_is_cbpe_on_the_same_scores() -> None:
    rng = np.random.default_rng(4)
    p = rng.random(5000)
    y = (rng.random(5000) < p).astype(int)
    estimator = CBPE.fit(y, p)
    scores = list(rng.random(700))
    result = estimated_performance(estimator, scores, window_rows=800)
    estimate = estimated_performance_json(result)
    direct = estimator.estimate(scores)
    for name in ("accuracy", "f1", "roc_auc", "precision", "recall", "roc_auc_bound"):
        assert estimate[name] == getattr(direct, name), name
    assert (estimate["rows"], estimate["window_rows"], estimate["coverage"]) == (700, 800, 0.875)
    assert estimate["estimator"] == estimator.model
    assert estimate["positive_label"] == "1"
    assert estimated_performance_from_json(estimate) == result
    assert estimated_metrics(result) == {
        "roc_auc": direct.roc_auc,
        "accuracy": direct.accuracy,
        "f1": direct.f1,
    }


# --- the stored reference ---------------------------------------------------------------------


def reference_frame(rows: int = 2000, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    score = rng.random(rows)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 0.5, rows),
            "region": rng.choice(["EU", "US"], rows),
            "prediction": score,
            "outcome": np.where(rng.random(rows) < score, "default", "repaid"),
        }
    )


def estimating_model(**estimation: object) -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "name": "credit",
            "prediction": {"field": "score", "positive_label": "default"},
            "labels": {"enabled": True},
            "performance_estimation": {"target": "outcome", **estimation},
        }
    )


def test_a_reference_carries_its_estimator_and_leaves_the_target_out_of_the_profile() -> None:
    frame = reference_frame()
    frame.loc[:9, "outcome"] = None  # rows without a target are left out of the fit
    reference = build_reference(estimating_model(calibration="none"), frame)
    assert list(reference.profile.specs) == ["amount", "region", "prediction"]
    usable = frame.iloc[10:]
    expected = CBPE.fit(usable["outcome"], usable["prediction"], "default", calibration="none")
    assert reference.estimator == expected
    loaded = StoredReference.from_bytes(reference.to_bytes())
    assert loaded.profile == reference.profile
    assert loaded.estimator == expected
    # The profile's own reader ignores the sibling key: older code reads new rows.
    assert ReferenceProfile.from_bytes(reference.to_bytes()) == reference.profile


def test_a_profile_stored_before_estimators_reads_without_one() -> None:
    profile = ReferenceProfile.from_frame(reference_frame().drop(columns=["outcome"]))
    loaded = StoredReference.from_bytes(profile.to_bytes())
    assert loaded.profile == profile
    assert loaded.estimator is None
    assert ESTIMATOR_KEY not in StoredReference(profile).to_bytes().decode()


def test_a_score_column_other_than_the_prediction_is_left_out_too() -> None:
    frame = reference_frame().rename(columns={"prediction": "p_default"})
    frame["prediction"] = np.where(frame["p_default"] >= 0.5, "default", "repaid")
    config = ModelConfig.model_validate(
        {
            "name": "credit",
            "prediction": {"field": "label", "positive_label": "default"},
            "labels": {"enabled": True},
            "performance_estimation": {"target": "outcome", "score": "p_default"},
        }
    )
    reference = build_reference(config, frame)
    assert list(reference.profile.specs) == ["amount", "region", "prediction"]
    assert reference.estimator is not None


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (reference_frame().drop(columns=["outcome"]), "no column 'outcome'"),
        (reference_frame().assign(outcome="default"), "labels with both 'default'"),
        (reference_frame().assign(prediction=math.nan), "no row with both a target"),
    ],
    ids=["no-target", "one-class", "no-scores"],
)
def test_a_reference_that_cannot_fit_the_estimator_is_a_clear_error(
    frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_reference(estimating_model(), frame)


def test_data_quality_bounds_must_name_a_numeric_profile_column() -> None:
    profile = ReferenceProfile.from_frame(reference_frame().drop(columns=["outcome"]))
    good = ModelConfig.model_validate(
        {"name": "m", "data_quality": {"bounds": {"amount": [0, 99]}}}
    )
    assert ModelRuntime(good, profile, 1).data_quality.bounds == {"amount": (0.0, 99.0)}
    bad = ModelConfig.model_validate({"name": "m", "data_quality": {"bounds": {"region": [0, 1]}}})
    with pytest.raises(ValueError, match=r"data_quality.bounds names 'region'.*numeric: amount"):
        ModelRuntime(bad, profile, 1)

"""Model-quality sketches agree with scikit-learn, merge exactly and round-trip.

scikit-learn is the reference implementation (a test dependency only:
``detectors`` may not import it). Exact metrics are compared at relative
1e-12 (float rounding of a different summation order); ROC AUC and average
precision from score histograms must lie within the bound each sketch reports.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from functools import reduce

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)

from detectors.errors import IncompatibleSketchError, InvalidParameterError, StateVersionError
from detectors.quality import ClassificationSketch, RegressionSketch
from detectors.quality.classification import (
    CLASSIFICATION_FORMAT_VERSION,
    DEFAULT_CALIBRATION_BINS,
)
from detectors.quality.regression import REGRESSION_FORMAT_VERSION

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)
REL = 1e-12


# ---- data ----------------------------------------------------------------------------------


def binary_case(
    n: int, seed: int, *, separation: float = 1.0, grid: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded ``(y_true, y_pred, scores)``: 30% positives, overlapping logistic scores.

    With ``grid`` the scores are rounded to multiples of it (many exact ties).
    """
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    scores = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * y - 1)))
    if grid is not None:
        scores = np.round(scores / grid) * grid
    return y, (scores > 0.5).astype(np.int64), scores


def multiclass_case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 4-class labels, right 60% of the time; class 3 is never predicted."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    wrong = rng.integers(0, 3, n)
    return y, np.where(rng.random(n) < 0.6, np.minimum(y, 2), wrong)


def direct_ece(y: np.ndarray, scores: np.ndarray, bins: int) -> float:
    """ECE by its definition, bin by bin: sum_b n_b / n |mean score_b - positive share_b|."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for b in range(bins):
        low, high = edges[b], edges[b + 1]
        inside = (scores >= low) & (scores <= high) if b == 0 else (scores > low) & (scores <= high)
        if inside.any():
            total += inside.sum() / scores.size * abs(scores[inside].mean() - y[inside].mean())
    return total


def assert_prf_match(sketch: ClassificationSketch, y, pred, zero_division: float) -> None:
    """Per-label and macro precision, recall and F1 equal scikit-learn's."""
    metrics = sketch.metrics(zero_division=zero_division)
    labels = sorted(set(np.asarray(y).tolist()) | set(np.asarray(pred).tolist()))
    p, r, f, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=zero_division
    )
    for i, label in enumerate(labels):
        got = metrics.for_label(label)
        np.testing.assert_allclose(
            [got.precision, got.recall, got.f1], [p[i], r[i], f[i]], rtol=REL
        )
        assert got.support == support[i]
    macro = precision_recall_fscore_support(
        y, pred, labels=labels, average="macro", zero_division=zero_division
    )
    np.testing.assert_allclose(
        [metrics.macro_precision, metrics.macro_recall, metrics.macro_f1], macro[:3], rtol=REL
    )


# ---- classification against scikit-learn ---------------------------------------------------


@pytest.mark.parametrize(("n", "seed"), [(50, 1), (2000, 2), (20_000, 3)])
def test_binary_with_scores_matches_sklearn(n: int, seed: int) -> None:
    y, pred, scores = binary_case(n, seed)
    metrics = ClassificationSketch.from_arrays(y, pred, scores=scores).metrics()
    assert metrics.rows == metrics.scored_rows == n
    assert metrics.positive_label == "1"
    assert metrics.accuracy == pytest.approx(accuracy_score(y, pred), rel=REL)
    assert metrics.log_loss == pytest.approx(log_loss(y, scores), rel=REL)
    assert metrics.brier_score == pytest.approx(brier_score_loss(y, scores), rel=REL)
    assert metrics.expected_calibration_error == pytest.approx(
        direct_ece(y, scores, DEFAULT_CALIBRATION_BINS), rel=1e-9, abs=1e-15
    )
    auc, ap = roc_auc_score(y, scores), average_precision_score(y, scores)
    assert abs(metrics.roc_auc - auc) <= metrics.roc_auc_bound
    assert abs(metrics.average_precision - ap) <= metrics.average_precision_bound
    assert_prf_match(ClassificationSketch.from_arrays(y, pred, scores=scores), y, pred, 0.0)


def test_measured_bounds_are_as_documented() -> None:
    """The module docstring's numbers: AUC bound ~5e-4 (error ~4e-6), AP ~1.6e-3 (~3.5e-4)."""
    y, pred, scores = binary_case(20_000, 0)
    metrics = ClassificationSketch.from_arrays(y, pred, scores=scores).metrics()
    auc_error = abs(metrics.roc_auc - roc_auc_score(y, scores))
    ap_error = abs(metrics.average_precision - average_precision_score(y, scores))
    assert 3e-4 < metrics.roc_auc_bound < 8e-4
    assert auc_error < 2e-5
    assert 1e-3 < metrics.average_precision_bound < 2.5e-3
    assert ap_error < 6e-4


def test_string_labels_with_positive_label() -> None:
    y, pred, scores = binary_case(3000, 4)
    names = np.array(["ham", "spam"])
    sketch = ClassificationSketch.from_arrays(
        names[y], names[pred], scores=scores, positive_label="spam"
    )
    metrics = sketch.metrics()
    assert metrics.log_loss == pytest.approx(log_loss(names[y], scores), rel=REL)
    assert metrics.brier_score == pytest.approx(
        brier_score_loss(names[y], scores, pos_label="spam"), rel=REL
    )
    assert abs(metrics.roc_auc - roc_auc_score(y, scores)) <= metrics.roc_auc_bound
    assert_prf_match(sketch, names[y], names[pred], 0.0)


@pytest.mark.parametrize("zero_division", [0.0, 1.0, math.nan])
def test_multiclass_matches_sklearn_including_undefined_ratios(zero_division: float) -> None:
    y, pred = multiclass_case(5000, 5)
    sketch = ClassificationSketch.from_arrays(y, pred)
    metrics = sketch.metrics(zero_division=zero_division)
    assert metrics.accuracy == pytest.approx(accuracy_score(y, pred), rel=REL)
    # Class 3 is never predicted: its precision is the zero_division value.
    assert metrics.for_label(3).predicted == 0
    assert metrics.for_label(3).precision == pytest.approx(zero_division, nan_ok=True)
    assert_prf_match(sketch, y, pred, zero_division)
    assert math.isnan(metrics.roc_auc)
    assert metrics.scored_rows == 0


@pytest.mark.parametrize("zero_division", [0.0, 1.0, math.nan])
def test_declared_label_absent_from_the_window(zero_division: float) -> None:
    """A label declared with labels= but never seen: every ratio undefined, as in scikit-learn."""
    y, pred = multiclass_case(300, 6)
    sketch = ClassificationSketch.from_arrays(y, pred, labels=[0, 1, 2, 3, 4])
    metrics = sketch.metrics(zero_division=zero_division)
    labels = [0, 1, 2, 3, 4]
    expected = precision_recall_fscore_support(
        y, pred, labels=labels, average="macro", zero_division=zero_division
    )
    np.testing.assert_allclose(
        [metrics.macro_precision, metrics.macro_recall, metrics.macro_f1], expected[:3], rtol=REL
    )
    assert metrics.for_label(4).support == 0


def test_one_class_missing_in_the_window() -> None:
    y, pred, scores = binary_case(400, 7)
    negatives = y == 0
    y, pred, scores = y[negatives], pred[negatives], scores[negatives]
    metrics = ClassificationSketch.from_arrays(y, pred, scores=scores).metrics()
    assert math.isnan(metrics.roc_auc)
    assert math.isnan(metrics.roc_auc_bound)
    assert math.isnan(metrics.average_precision)
    # scikit-learn needs the labels spelled out when y_true holds one class.
    assert metrics.log_loss == pytest.approx(log_loss(y, scores, labels=[0, 1]), rel=REL)
    assert metrics.brier_score == pytest.approx(brier_score_loss(y, scores, pos_label=1), rel=REL)
    assert_prf_match(ClassificationSketch.from_arrays(y, pred), y, pred, 0.0)


@pytest.mark.parametrize("grid", [0.05, 0.2])
def test_tied_scores_stay_within_the_bounds(grid: float) -> None:
    y, pred, scores = binary_case(5000, 8, grid=grid)
    metrics = ClassificationSketch.from_arrays(y, pred, scores=scores).metrics()
    assert abs(metrics.roc_auc - roc_auc_score(y, scores)) <= metrics.roc_auc_bound + 1e-12
    ap = average_precision_score(y, scores)
    assert abs(metrics.average_precision - ap) <= metrics.average_precision_bound + 1e-12
    assert metrics.log_loss == pytest.approx(log_loss(y, scores), rel=REL)


def test_bounds_hold_on_small_coarse_adversarial_cases() -> None:
    """Few rows, 1-4 bins, heavy ties or distinct scores: the exact values stay within bounds."""
    rng = np.random.default_rng(14)
    for trial in range(120):
        n = int(rng.integers(2, 30))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        distinct = rng.random(int(rng.integers(1, 6)))
        scores = rng.choice(distinct, n) if trial % 2 else rng.random(n)
        bins = int(rng.integers(1, 5))
        m = ClassificationSketch.from_arrays(y, y, scores=scores, score_bins=bins).metrics()
        auc, ap = roc_auc_score(y, scores), average_precision_score(y, scores)
        assert abs(m.roc_auc - auc) <= m.roc_auc_bound + 1e-12, trial
        assert abs(m.average_precision - ap) <= m.average_precision_bound + 1e-12, trial


def test_histograms_are_exact_when_each_bin_holds_one_score_value() -> None:
    """Scores at bin centres: no ties are created, so AUC and AP equal scikit-learn's."""
    rng = np.random.default_rng(9)
    y = (rng.random(4000) < 0.4).astype(np.int64)
    bins = np.clip(rng.integers(0, 100, 4000) + 20 * y - 10, 0, 99)
    scores = (bins + 0.5) / 100
    metrics = ClassificationSketch.from_arrays(y, y, scores=scores, score_bins=100).metrics()
    assert metrics.roc_auc == pytest.approx(roc_auc_score(y, scores), rel=REL)
    assert metrics.average_precision == pytest.approx(average_precision_score(y, scores), rel=REL)


def test_calibration_bins_are_those_of_calibration_curve() -> None:
    y, pred, scores = binary_case(3000, 10)
    sketch = ClassificationSketch.from_arrays(y, pred, scores=scores, calibration_bins=10)
    assert sketch.scores is not None
    prob_true, prob_pred = calibration_curve(y, scores, n_bins=10, strategy="uniform")
    filled = sketch.scores.calibration_count > 0
    count = sketch.scores.calibration_count[filled]
    np.testing.assert_allclose(sketch.scores.calibration_positive[filled] / count, prob_true)
    np.testing.assert_allclose(sketch.scores.calibration_score[filled] / count, prob_pred)
    assert sketch.metrics().expected_calibration_error == pytest.approx(
        direct_ece(y, scores, 10), rel=1e-9
    )


def test_scores_outside_the_unit_interval() -> None:
    """Decision-function scores: AUC and AP on a configured range; probability metrics NaN."""
    y, pred, scores = binary_case(3000, 11)
    logits = np.log(scores / (1 - scores))
    sketch = ClassificationSketch.from_arrays(y, pred, scores=logits, score_range=(-6.0, 6.0))
    metrics = sketch.metrics()
    assert abs(metrics.roc_auc - roc_auc_score(y, logits)) <= metrics.roc_auc_bound
    ap = average_precision_score(y, logits)
    assert abs(metrics.average_precision - ap) <= metrics.average_precision_bound
    assert math.isnan(metrics.log_loss)
    assert math.isnan(metrics.brier_score)
    assert math.isnan(metrics.expected_calibration_error)


def test_scores_beyond_the_range_fall_in_the_end_bins_and_the_bound_holds() -> None:
    y, pred, scores = binary_case(3000, 12)
    logits = np.log(scores / (1 - scores))
    metrics = ClassificationSketch.from_arrays(
        y, pred, scores=logits, score_range=(-0.5, 0.5)
    ).metrics()
    assert abs(metrics.roc_auc - roc_auc_score(y, logits)) <= metrics.roc_auc_bound
    assert metrics.roc_auc_bound > 0.01  # the end bins hold many pairs: an honest, wide bound


def test_empty_sketches_give_nan_not_exceptions() -> None:
    for sketch in (
        ClassificationSketch.empty(),
        ClassificationSketch.empty(positive_label=1),
        ClassificationSketch.from_arrays([], [], scores=[]),
    ):
        metrics = sketch.metrics()
        assert metrics.rows == 0
        values = [
            metrics.accuracy,
            metrics.macro_precision,
            metrics.macro_f1,
            metrics.roc_auc,
            metrics.average_precision,
            metrics.log_loss,
            metrics.brier_score,
            metrics.expected_calibration_error,
        ]
        assert all(math.isnan(v) for v in values)
        json.dumps(metrics.to_dict())


def test_default_positive_labels() -> None:
    assert (
        ClassificationSketch.from_arrays([True, False], [True, True], scores=[0.9, 0.2])
        .metrics()
        .positive_label
        == "true"
    )
    assert (
        ClassificationSketch.from_arrays([-1, 1], [1, 1], scores=[0.9, 0.2])
        .metrics()
        .positive_label
        == "1"
    )
    with pytest.raises(InvalidParameterError, match="positive_label"):
        ClassificationSketch.from_arrays(["a", "b"], ["a", "a"], scores=[0.1, 0.2])


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"y_true": [0, None], "y_pred": [0, 1]}, "y_true"),
        ({"y_true": [0, 1], "y_pred": [0]}, "y_pred"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, math.nan]}, "scores"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1]}, "scores"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "positive_label": 1}, "positive_label"),
        ({"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, 0.2], "score_bins": 0}, "score_bins"),
        (
            {"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, 0.2], "score_range": (1, 1)},
            "score_range",
        ),
        (
            {"y_true": [0, 1], "y_pred": [0, 1], "scores": [0.1, 0.2], "calibration_bins": 0},
            "calibration_bins",
        ),
    ],
)
def test_invalid_input_names_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        ClassificationSketch.from_arrays(**kwargs)  # type: ignore[arg-type]
    assert raised.value.name == parameter


def test_invalid_zero_division() -> None:
    with pytest.raises(InvalidParameterError, match="zero_division"):
        ClassificationSketch.empty().metrics(zero_division=0.5)


def test_incompatible_merges_are_refused() -> None:
    scored = ClassificationSketch.from_arrays([0, 1], [0, 1], scores=[0.2, 0.7])
    unscored = ClassificationSketch.from_arrays([0, 1], [1, 1])
    with pytest.raises(IncompatibleSketchError, match="without scores"):
        scored.merge(unscored)
    other_bins = ClassificationSketch.from_arrays([0, 1], [0, 1], scores=[0.2, 0.7], score_bins=10)
    with pytest.raises(IncompatibleSketchError, match="bins"):
        scored.merge(other_bins)
    # An empty sketch without a score part is the identity.
    assert scored.merge(ClassificationSketch.empty()) == scored


# ---- classification: merge and state --------------------------------------------------------

LABELS = ["a", "b", "c", "d"]
labelled_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        st.sampled_from(["a", "b"]),
        st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.5, 1.0, 0.25])),
    ),
    max_size=30,
)


def sketch_of(rows: list[tuple[str, str, float]]) -> ClassificationSketch:
    """The scored sketch of ``(true, predicted, score)`` rows; "b" is positive."""
    if not rows:
        return ClassificationSketch.empty(positive_label="b", score_bins=50)
    y, pred, scores = zip(*rows, strict=True)
    return ClassificationSketch.from_arrays(
        list(y), list(pred), scores=list(scores), positive_label="b", score_bins=50
    )


@PROPERTY_SETTINGS
@given(st.lists(labelled_rows, min_size=1, max_size=4))
def test_merge_of_parts_is_the_sketch_of_the_whole(parts: list[list]) -> None:
    merged = reduce(ClassificationSketch.merge, [sketch_of(p) for p in parts])
    whole = sketch_of([row for part in parts for row in part])
    assert merged == whole
    assert merged.merge(ClassificationSketch.empty()) == merged
    a, b = merged.metrics(), whole.metrics()
    for name in ("accuracy", "roc_auc", "average_precision", "log_loss", "brier_score"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-9, nan_ok=True)


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(LABELS), st.sampled_from(LABELS)), max_size=20),
        min_size=1,
        max_size=4,
    )
)
def test_multiclass_merge_with_different_label_sets(parts: list[list]) -> None:
    def sketch(rows: list[tuple[str, str]]) -> ClassificationSketch:
        if not rows:
            return ClassificationSketch.empty()
        y, pred = zip(*rows, strict=True)
        return ClassificationSketch.from_arrays(list(y), list(pred))

    merged = reduce(ClassificationSketch.merge, [sketch(p) for p in parts])
    assert merged == sketch([row for part in parts for row in part])


@PROPERTY_SETTINGS
@given(labelled_rows)
def test_state_round_trips_through_json(rows: list[tuple[str, str, float]]) -> None:
    sketch = sketch_of(rows)
    restored = ClassificationSketch.from_dict(json.loads(json.dumps(sketch.to_dict())))
    assert restored == sketch
    assert restored.metrics().to_dict() == sketch.metrics().to_dict()


def test_unscored_state_round_trips_and_newer_versions_are_refused() -> None:
    y, pred = multiclass_case(100, 13)
    sketch = ClassificationSketch.from_arrays(y, pred)
    state = json.loads(json.dumps(sketch.to_dict()))
    assert ClassificationSketch.from_dict(state) == sketch
    state["version"] = CLASSIFICATION_FORMAT_VERSION + 1
    with pytest.raises(StateVersionError, match="upgrade driftline"):
        ClassificationSketch.from_dict(state)
    bad = sketch.to_dict()
    bad["confusion"] = [[1]]
    with pytest.raises(IncompatibleSketchError):
        ClassificationSketch.from_dict(bad)


# ---- regression -----------------------------------------------------------------------------


def regression_case(n: int, seed: int, *, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded targets (some exactly zero) and noisy predictions, shifted by ``offset``."""
    rng = np.random.default_rng(seed)
    y = rng.normal(offset, 3.0, n)
    y[rng.random(n) < 0.02] = 0.0
    return y, y + rng.normal(0.3, 1.0, n)


def assert_regression_matches(sketch: RegressionSketch, y: np.ndarray, f: np.ndarray) -> None:
    """Every metric equals scikit-learn's (relative 1e-9)."""
    m = sketch.metrics()
    assert m.rows == y.size
    assert m.mae == pytest.approx(mean_absolute_error(y, f), rel=1e-9)
    assert m.mse == pytest.approx(mean_squared_error(y, f), rel=1e-9)
    assert m.rmse == pytest.approx(root_mean_squared_error(y, f), rel=1e-9)
    assert m.mape == pytest.approx(mean_absolute_percentage_error(y, f), rel=1e-9)
    assert m.r2 == pytest.approx(r2_score(y, f), rel=1e-9)
    assert m.mean_error == pytest.approx(float(np.mean(f - y)), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(("n", "offset"), [(2, 0.0), (50, 0.0), (10_000, 0.0), (10_000, 1e6)])
def test_regression_matches_sklearn(n: int, offset: float) -> None:
    y, f = regression_case(n, n, offset=offset)
    sketch = RegressionSketch.from_arrays(y, f)
    assert_regression_matches(sketch, y, f)
    assert sketch.zero_targets == int((y == 0).sum())


@pytest.mark.parametrize("offset", [0.0, 1e6])
def test_regression_merge_of_parts_matches_sklearn_on_the_whole(offset: float) -> None:
    y, f = regression_case(9000, 21, offset=offset)
    cuts = [0, 1, 1, 700, 4000, 8999, 9000]
    parts = [RegressionSketch.from_arrays(y[a:b], f[a:b]) for a, b in itertools.pairwise(cuts)]
    merged = reduce(RegressionSketch.merge, parts)
    assert merged == RegressionSketch.from_arrays(y, f)
    assert_regression_matches(merged, y, f)


finite = st.floats(-1e4, 1e4, allow_nan=False)


@PROPERTY_SETTINGS
@given(st.lists(st.lists(st.tuples(finite, finite), max_size=15), min_size=1, max_size=4))
def test_regression_merge_equals_sketch_of_concatenation(parts: list[list]) -> None:
    def sketch(rows: list[tuple[float, float]]) -> RegressionSketch:
        return RegressionSketch.from_arrays([r[0] for r in rows], [r[1] for r in rows])

    rows = [row for part in parts for row in part]
    merged = reduce(RegressionSketch.merge, [sketch(p) for p in parts])
    whole = sketch(rows)
    assert merged.rows == whole.rows
    scale = max([abs(v) for row in rows for v in row], default=1.0) or 1.0
    for got, expected, unit in [
        (merged.error_sum, whole.error_sum, scale),
        (merged.absolute_error_sum, whole.absolute_error_sum, scale),
        (merged.squared_error_sum, whole.squared_error_sum, scale**2),
        (merged.target_mean, whole.target_mean, scale),
        (merged.target_m2, whole.target_m2, scale**2),
    ]:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12 * max(len(rows), 1) * unit)


def test_regression_r2_edge_cases_follow_sklearn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        one = r2_score([1.0], [2.0])
    assert math.isnan(one)
    assert math.isnan(RegressionSketch.from_arrays([1.0], [2.0]).metrics().r2)
    constant = np.full(10, 3.0)
    assert RegressionSketch.from_arrays(constant, constant).metrics().r2 == 1.0
    assert RegressionSketch.from_arrays(constant, constant + 1).metrics().r2 == r2_score(
        constant, constant + 1
    )
    parts = [RegressionSketch.from_arrays(constant[:4], constant[:4] + 1)] * 2
    assert reduce(RegressionSketch.merge, parts).metrics().r2 == 0.0


def test_regression_mape_divides_zero_targets_by_eps_as_sklearn() -> None:
    y, f = np.array([0.0, 2.0]), np.array([1.0, 1.0])
    sketch = RegressionSketch.from_arrays(y, f)
    assert sketch.metrics().mape == mean_absolute_percentage_error(y, f)
    assert sketch.metrics().zero_targets == 1


def test_regression_empty_round_trip_and_errors() -> None:
    empty = RegressionSketch.from_arrays([], [])
    metrics = empty.metrics()
    assert metrics.rows == 0
    assert math.isnan(metrics.mae)
    assert math.isnan(metrics.r2)
    assert json.loads(json.dumps(metrics.to_dict()))["mae"] is None
    y, f = regression_case(100, 22)
    sketch = RegressionSketch.from_arrays(y, f)
    assert empty.merge(sketch) == sketch == sketch.merge(empty)
    state = json.loads(json.dumps(sketch.to_dict()))
    assert RegressionSketch.from_dict(state) == sketch
    state["version"] = REGRESSION_FORMAT_VERSION + 1
    with pytest.raises(StateVersionError):
        RegressionSketch.from_dict(state)
    with pytest.raises(InvalidParameterError) as raised:
        RegressionSketch.from_arrays([1.0, math.nan], [1.0, 2.0])
    assert raised.value.name == "y_true"
    with pytest.raises(InvalidParameterError) as raised:
        RegressionSketch.from_arrays([1.0, 2.0], [1.0])
    assert raised.value.name == "y_pred"

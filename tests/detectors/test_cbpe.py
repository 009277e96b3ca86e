"""CBPE: performance estimated without labels, against NannyML and scikit-learn.

* Calibration: the numpy pool-adjacent-violators isotonic regression equals
  scikit-learn's ``IsotonicRegression`` (knots, values and predictions, absolute
  1e-12); the calibration check keeps calibrated scores and calibrates distorted ones.
* Estimates: NannyML's formulas (transcribed below from nannyml 0.13.1's
  ``performance_estimation/confidence_based/metrics.py``) on the same rows; the
  binned ROC AUC within its reported bound of the row-wise formula; sketches
  merge exactly and round-trip through JSON.
* Unbiased on seeded calibrated data: over 100 windows, the mean of
  ``estimated - realized`` is within 4 standard errors of 0.
* NannyML's synthetic car-loan data (ten 5,000-row analysis chunks): the
  estimates equal NannyML 0.13.1's own per chunk (recorded below from
  ``benchmarks/peers/run_nannyml_cbpe.py``; absolute 1e-8, NannyML rounds its
  AUC sums to 5 decimals), and the MAE against the realized metrics is NannyML's.

On the anchors. The issue quotes NannyML's MAEs as 0.0021 (ROC AUC), 0.0031
(accuracy) and 0.0026 (F1). Measured at full precision they are 0.0021154,
0.0031122 and 0.0025754, and driftline's estimates are NannyML's (same
calibrator, same formulas: differences of 1e-9), so driftline's MAEs are the
same numbers: equal to the anchors at their four decimals, above the first two
in the fifth. They are asserted as measured (:data:`MEASURED_MAE`) and, rounded
to four decimals, as at most the anchors. Beating them would take a different
estimator, and the floor is the chunks' own sampling noise: a 5,000-row
chunk's realized accuracy varies around its expectation by about
``sqrt(0.93 * 0.07 / 5000)`` = 0.0036, so even the true probabilities of every
row would leave an MAE of about 0.003 on ten chunks.

The car-loan files ship inside the ``nannyml`` package, which cannot be
installed in this virtualenv (it needs pandas < 3); they are read from the
peers' virtualenv (``$PEERS_VENV``, default ``.venv-peers``), which
``bash benchmarks/setup_peers.sh`` creates. Without it these tests skip, and
fail under ``CI=true``.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import reduce
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.isotonic import isotonic_regression as sklearn_isotonic_regression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from detectors.errors import IncompatibleSketchError, InvalidParameterError, StateVersionError
from detectors.performance import (
    CBPE,
    CBPESketch,
    IsotonicCalibrator,
    calibration_check,
    isotonic_regression,
)
from detectors.performance.cbpe import (
    CBPE_FORMAT_VERSION,
    CBPE_SKETCH_FORMAT_VERSION,
    Calibration,
)
from tests.detectors.nannyml_data import read_data_files

ROOT = Path(__file__).resolve().parents[2]
CAR_LOAN_FILES = (
    "synthetic_car_loan_reference.csv",
    "synthetic_car_loan_analysis.csv",
    "synthetic_car_loan_analysis_target.csv",
)
CHUNK = 5000
METRICS = ("roc_auc", "accuracy", "f1")
#: NannyML 0.13.1's MAE per metric on 5,000-row chunks, as quoted in the issue.
ANCHOR_MAE = {"roc_auc": 0.0021, "accuracy": 0.0031, "f1": 0.0026}
#: driftline's MAE as measured (0.0021154, 0.0031122, 0.0025754), rounded up.
MEASURED_MAE = {"roc_auc": 0.002116, "accuracy": 0.003113, "f1": 0.002576}
#: NannyML 0.13.1's CBPE estimates (roc_auc, accuracy, f1) of the ten analysis chunks.
NANNYML_ESTIMATES = (
    (0.97074363630015, 0.9417918815681862, 0.9430304451628215),
    (0.9710106327368981, 0.9433212063264171, 0.9413244905845768),
    (0.9714067155511361, 0.945491564102071, 0.9435742205302156),
    (0.9710913930740382, 0.9448160090577434, 0.9431585198049771),
    (0.971123121124055, 0.9446449963258085, 0.944204158374318),
    (0.9610902734539033, 0.9107141561301565, 0.9117534391710251),
    (0.9618247016040209, 0.9111494651135412, 0.9117656547639935),
    (0.9610734463362078, 0.9111927290072174, 0.9116608243766048),
    (0.9625334611153133, 0.914389361952461, 0.9137626782640867),
    (0.9613161529631752, 0.9117313189100634, 0.9147512437652607),
)
PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


# ---- reference implementations ------------------------------------------------------------


def nannyml_roc_auc(probabilities: np.ndarray, scores: np.ndarray) -> float:
    """NannyML's ``estimate_roc_auc``, row by row (without its rounding to 5 decimals)."""
    order = np.argsort(scores)[::-1]
    p = probabilities[order]
    tps = np.r_[0.0, np.cumsum(p)]
    fps = np.r_[0.0, 1 + np.arange(p.size) - np.cumsum(p)]
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def nannyml_counts(probabilities: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """NannyML's ``estimate_accuracy``, ``_precision``, ``_recall``, ``_specificity``, ``_f1``."""
    p = probabilities
    tp, fp = p[predicted].sum(), (1 - p[predicted]).sum()
    fn, tn = p[~predicted].sum(), (1 - p[~predicted]).sum()
    return {
        "accuracy": (tp + tn) / p.size,
        "precision": tp / (tp + fp),
        "recall": tp / (tp + fn),
        "specificity": tn / (tn + fp),
        "f1": tp / (tp + 0.5 * (fp + fn)),
    }


def calibrated_case(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(y, p)``: calibrated scores ``p = sigmoid(1.5 z - 0.5)``, ``y ~ Bernoulli(p)``."""
    p = 1 / (1 + np.exp(-(1.5 * rng.normal(size=n) - 0.5)))
    return (rng.random(n) < p).astype(np.int64), p


def roc_auc_fast(y: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney ROC AUC (sklearn's for continuous scores, without its input checks)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    positives = y == 1
    n_pos = int(positives.sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (y.size - n_pos)))


# ---- isotonic calibration against scikit-learn ---------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pav_equals_sklearn_isotonic_regression(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(size=500).cumsum() * 0.1 + rng.normal(size=500)
    weights = rng.uniform(0.1, 3.0, size=500)
    np.testing.assert_allclose(
        isotonic_regression(y, weights),
        sklearn_isotonic_regression(y, sample_weight=weights),
        rtol=0,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        isotonic_regression(y), sklearn_isotonic_regression(y), rtol=0, atol=1e-12
    )


@pytest.mark.parametrize(
    "case", ["continuous", "two-decimal grid", "one score", "separable", "all negative"]
)
def test_calibrator_equals_sklearn_isotonic(case: str) -> None:
    rng = np.random.default_rng(7)
    y, scores = calibrated_case(3000, rng)
    scores = scores**2  # distorted, so the fit is not the identity
    if case == "two-decimal grid":
        scores = np.round(scores, 2)
    elif case == "one score":
        scores = np.full(scores.size, 0.3)
    elif case == "separable":
        scores = np.where(y == 1, 0.6 + scores / 4, scores / 4)
    elif case == "all negative":
        y = np.zeros_like(y)
    ours = IsotonicCalibrator.fit(scores, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, y)
    np.testing.assert_array_equal(ours.knots, theirs.X_thresholds_)
    np.testing.assert_allclose(ours.values, theirs.y_thresholds_, rtol=0, atol=1e-12)
    probe = np.concatenate([np.linspace(-0.5, 1.5, 401), scores[:200]])
    np.testing.assert_allclose(ours.predict(probe), theirs.predict(probe), rtol=0, atol=1e-12)


@PROPERTY_SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 40), st.booleans()), min_size=1, max_size=60),
)
def test_calibrator_property_equals_sklearn(rows: list[tuple[int, bool]]) -> None:
    scores = np.array([s / 40 for s, _ in rows])
    y = np.array([int(label) for _, label in rows])
    ours = IsotonicCalibrator.fit(scores, y)
    theirs = IsotonicRegression(out_of_bounds="clip").fit(scores, y)
    probe = np.linspace(-0.1, 1.1, 121)
    np.testing.assert_allclose(ours.predict(probe), theirs.predict(probe), rtol=0, atol=1e-12)


def test_calibrator_round_trips_and_refuses_bad_input() -> None:
    calibrator = IsotonicCalibrator.fit([0.1, 0.5, 0.9, 0.9], [0, 1, 0, 1])
    assert IsotonicCalibrator.from_dict(json.loads(json.dumps(calibrator.to_dict()))) == calibrator
    with pytest.raises(InvalidParameterError, match="scores"):
        IsotonicCalibrator.fit([0.1, 0.2], [1])
    with pytest.raises(InvalidParameterError, match="calibrator"):
        IsotonicCalibrator.from_dict({"knots": [0.1, 0.2], "values": [0.5]})


# ---- the calibration check -----------------------------------------------------------------


def test_calibration_check_calibrates_distorted_scores() -> None:
    y, p = calibrated_case(20_000, np.random.default_rng(3))
    fixed = calibration_check(p**3, y == 1)
    assert fixed.needed
    assert fixed.reason == "calibration lowers the held-out ECE"
    assert fixed.ece_calibrated < 0.01 < 0.05 < fixed.ece_raw
    assert fixed.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert calibration_check(p**3, y == 1) == fixed  # seeded: the same splits every time


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_calibration_check_on_calibrated_scores_compares_noise(seed: int) -> None:
    # Both ECEs are sampling noise here, so the decision goes either way (as NannyML's
    # does: see detectors.performance.calibration); the rule is what is checked.
    y, p = calibrated_case(20_000, np.random.default_rng(seed))
    check = calibration_check(p, y == 1)
    assert check.needed == (check.ece_raw > check.ece_calibrated)
    assert check.reason == (
        "calibration lowers the held-out ECE"
        if check.needed
        else "calibration does not lower the held-out ECE"
    )
    assert max(check.ece_raw, check.ece_calibrated) < 0.02


def test_calibration_check_skips_one_class_and_separable_scores() -> None:
    y, p = calibrated_case(1000, np.random.default_rng(4))
    one_class = calibration_check(p, np.zeros(p.size, dtype=bool))
    assert (one_class.needed, one_class.reason) == (False, "the reference has one class only")
    separable = calibration_check(np.where(y == 1, 0.9, 0.1), y == 1)
    assert not separable.needed
    assert separable.reason == "reference ROC AUC above 0.999"
    with pytest.raises(InvalidParameterError, match="test_share"):
        calibration_check(p, y == 1, test_share=1.0)


# ---- estimates from a window ---------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> tuple[CBPE, np.random.Generator]:
    """A CBPE fitted on distorted scores (so isotonic calibration applies), and its rng."""
    rng = np.random.default_rng(11)
    y, p = calibrated_case(20_000, rng)
    return CBPE.fit(y, p**2, threshold=0.3), rng


def test_distorted_reference_is_calibrated(fitted: tuple[CBPE, np.random.Generator]) -> None:
    model, _ = fitted
    assert model.calibrator is not None
    assert model.check.needed
    assert model.check.reason == "calibration lowers the held-out ECE"


@pytest.mark.parametrize("grid", [None, 0.01])
def test_estimates_follow_nannyml_formulas(
    fitted: tuple[CBPE, np.random.Generator], grid: float | None
) -> None:
    model, rng = fitted
    _, p = calibrated_case(20_000, rng)
    scores = p**2 if grid is None else np.round(p**2 / grid) * grid
    estimate = model.estimate(scores)
    probabilities = model.calibrate(scores)
    expected = nannyml_counts(probabilities, scores >= model.threshold)
    for name, value in expected.items():
        assert getattr(estimate, name) == pytest.approx(value, rel=1e-12), name
    assert estimate.rows == scores.size
    assert estimate.predicted_positives == int((scores >= 0.3).sum())
    assert estimate.expected_positives == pytest.approx(probabilities.sum(), rel=1e-12)
    row_wise = nannyml_roc_auc(probabilities, scores)
    assert abs(estimate.roc_auc - row_wise) <= estimate.roc_auc_bound + 1e-12
    if grid is None:
        # Measured (module docstring of detectors.performance.cbpe): bound ~9e-6, error ~3e-6.
        assert 0 < estimate.roc_auc_bound < 2e-5
        assert abs(estimate.roc_auc - row_wise) < 1e-5
    else:
        # Grid coarser than the bins: one probability per bin, so binned is row-wise.
        assert estimate.roc_auc_bound == 0
        assert estimate.roc_auc == pytest.approx(row_wise, abs=1e-12)


def test_uncalibrated_scores_are_used_as_probabilities() -> None:
    rng = np.random.default_rng(5)
    y, p = calibrated_case(5000, rng)
    model = CBPE.fit(y, p, calibration="none")
    assert model.calibrator is None
    assert model.check.reason == "calibration='none'"
    _, window = calibrated_case(3000, rng)
    estimate = model.estimate(window)
    expected = nannyml_counts(window, window >= 0.5)
    assert estimate.f1 == pytest.approx(expected["f1"], rel=1e-12)
    row_wise = nannyml_roc_auc(window, window)
    assert abs(estimate.roc_auc - row_wise) <= estimate.roc_auc_bound + 1e-12


def test_logits_are_always_calibrated() -> None:
    y, p = calibrated_case(4000, np.random.default_rng(6))
    logits = np.log(p / (1 - p))
    model = CBPE.fit(y, logits, threshold=0.0, score_range=(-8.0, 8.0))
    assert model.calibrator is not None
    assert model.check.reason == "scores outside [0, 1]"
    with pytest.raises(InvalidParameterError, match="y_score"):
        CBPE.fit(y, logits, calibration="none")
    # Isotonic calibration is invariant under increasing maps of the score.
    on_probabilities = CBPE.fit(y, p, calibration="isotonic")
    window = logits[:500]
    assert model.estimate(window).f1 == pytest.approx(
        on_probabilities.estimate(p[:500]).f1, rel=1e-9
    )


@pytest.mark.parametrize(
    ("distortion", "calibration", "reference_rows", "tolerance"),
    [("none", "none", 20_000, 0.003), ("square", "isotonic", 100_000, 0.006)],
)
def test_estimates_are_unbiased(
    distortion: str, calibration: Calibration, reference_rows: int, tolerance: float
) -> None:
    """Mean of estimated - realized over 100 windows of 2,000 rows.

    Calibrated scores used as probabilities: unbiased (within 4 standard
    errors). Squared scores calibrated on the reference: biased only by the
    calibrator's own sampling error on the reference, shared by every window
    (measured over five 100,000-row references: mean calibrated minus true
    probability of the predicted positives within +-0.002, 0.003 on average
    over the four metrics here; at 20,000 rows the same spread is +-0.01).
    """
    rng = np.random.default_rng(8)
    transform = (lambda p: p) if distortion == "none" else np.square
    y, p = calibrated_case(reference_rows, rng)
    model = CBPE.fit(y, transform(p), calibration=calibration, threshold=float(transform(0.5)))
    assert (model.calibrator is None) == (distortion == "none")
    errors: dict[str, list[float]] = {m: [] for m in ("accuracy", "f1", "roc_auc", "precision")}
    for _ in range(100):
        y_window, p_window = calibrated_case(2000, rng)
        estimate = model.estimate(transform(p_window))
        predicted = p_window >= 0.5
        tp = int((predicted & (y_window == 1)).sum())
        realized = {
            "accuracy": float(np.mean(predicted == (y_window == 1))),
            "f1": 2 * tp / (predicted.sum() + (y_window == 1).sum()),
            "roc_auc": roc_auc_fast(y_window, p_window),
            "precision": tp / predicted.sum(),
        }
        assert estimate.predicted_positives == predicted.sum()
        for name, value in realized.items():
            errors[name].append(getattr(estimate, name) - value)
    for name, values in errors.items():
        error = np.asarray(values)
        assert abs(error.mean()) < tolerance, name
        if distortion == "none":
            assert abs(error.mean()) < 4 * error.std(ddof=1) / math.sqrt(error.size), name
        # Per window, errors are the sampling noise of 2,000 rows (sd ~0.009-0.015).
        assert np.abs(error).mean() < 0.015, name


# ---- merging and serialising ---------------------------------------------------------------


def test_merged_sketches_equal_the_sketch_of_the_union(
    fitted: tuple[CBPE, np.random.Generator],
) -> None:
    model, rng = fitted
    _, p = calibrated_case(9000, rng)
    scores = p**2
    cuts = [0, 1234, 1235, 6000, 9000]
    parts = [model.sketch(scores[a:b]) for a, b in itertools.pairwise(cuts)]
    whole = model.sketch(scores)
    merged = reduce(CBPESketch.merge, parts, model.empty_sketch())
    assert merged == whole
    assert np.array_equal(merged.counts, whole.counts)
    assert merged.predicted_positive == whole.predicted_positive
    a, b = merged.estimate(), whole.estimate()
    for name in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-12), name
    assert reduce(CBPESketch.merge, reversed(parts)) == whole
    assert whole.merge(model.empty_sketch()) == whole


def test_sketches_of_different_estimators_do_not_merge(
    fitted: tuple[CBPE, np.random.Generator],
) -> None:
    model, _ = fitted
    other = CBPE.fit([0, 1, 0, 1], [0.2, 0.7, 0.4, 0.9], calibration="none", threshold=0.3)
    with pytest.raises(IncompatibleSketchError, match="different fitted estimators"):
        model.empty_sketch().merge(other.empty_sketch())


def test_estimator_and_sketch_round_trip_through_json(
    fitted: tuple[CBPE, np.random.Generator],
) -> None:
    model, rng = fitted
    restored = CBPE.from_dict(json.loads(json.dumps(model.to_dict())))
    assert restored == model
    assert restored.model == model.model
    _, p = calibrated_case(1000, rng)
    sketch = model.sketch(p**2)
    assert restored.sketch(p**2) == sketch
    assert CBPESketch.from_dict(json.loads(json.dumps(sketch.to_dict()))) == sketch
    empty = model.empty_sketch()
    assert CBPESketch.from_dict(json.loads(json.dumps(empty.to_dict()))) == empty


def test_newer_or_foreign_formats_are_refused(fitted: tuple[CBPE, np.random.Generator]) -> None:
    model, _ = fitted
    newer = {**model.to_dict(), "version": CBPE_FORMAT_VERSION + 1}
    with pytest.raises(StateVersionError, match="upgrade driftline"):
        CBPE.from_dict(newer)
    sketch = model.empty_sketch().to_dict()
    with pytest.raises(StateVersionError):
        CBPESketch.from_dict({**sketch, "version": CBPE_SKETCH_FORMAT_VERSION + 1})
    with pytest.raises(IncompatibleSketchError, match="expected serialised"):
        CBPESketch.from_dict({**sketch, "format": "driftline.classification_sketch"})
    with pytest.raises(IncompatibleSketchError, match="bins"):
        CBPESketch.from_dict({**sketch, "counts": [0, 1]})


# ---- edge cases and validation -------------------------------------------------------------


def test_empty_window_and_zero_division(fitted: tuple[CBPE, np.random.Generator]) -> None:
    model, _ = fitted
    empty = model.estimate([])
    assert empty.rows == 0
    assert all(
        math.isnan(getattr(empty, name))
        for name in ("accuracy", "precision", "recall", "f1", "roc_auc", "roc_auc_bound")
    )
    none_predicted = model.estimate([0.01, 0.02, 0.05])  # all below the 0.3 threshold
    assert none_predicted.predicted_positives == 0
    assert none_predicted.precision == 0.0
    assert math.isnan(model.sketch([0.01]).estimate(zero_division=math.nan).precision)
    assert json.loads(json.dumps(empty.to_dict()))["roc_auc"] is None


def test_labels_other_than_zero_one_need_a_positive_label() -> None:
    y = np.array(["repaid", "default"] * 50)
    scores = np.where(y == "repaid", 0.8, 0.3) + np.linspace(0, 0.1, 100)
    model = CBPE.fit(y, scores, positive_label="repaid", calibration="none")
    assert model.positive_label == "repaid"
    assert model.estimate(scores).accuracy > 0.5
    with pytest.raises(InvalidParameterError, match="positive_label"):
        CBPE.fit(y, scores)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"threshold": math.nan}, "threshold"),
        ({"calibration": "platt"}, "calibration"),
        ({"score_bins": 0}, "score_bins"),
        ({"score_range": (1.0, 0.0)}, "score_range"),
    ],
)
def test_invalid_parameters_are_named(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(InvalidParameterError, match=name) as raised:
        CBPE.fit([0, 1], [0.2, 0.8], **kwargs)  # type: ignore[arg-type]
    assert raised.value.name == name


def test_invalid_reference_rows_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="y_true"):
        CBPE.fit([1, 1, 1], [0.2, 0.5, 0.8])
    with pytest.raises(InvalidParameterError, match="y_score"):
        CBPE.fit([0, 1, 1], [0.2, math.nan, 0.8])
    with pytest.raises(InvalidParameterError, match="y_score"):
        CBPE.fit([0, 1, 1], [0.2, 0.8])
    model = CBPE.fit([0, 1, 1, 0], [0.2, 0.8, 0.7, 0.3], calibration="none")
    with pytest.raises(InvalidParameterError, match="y_score"):
        model.sketch([0.5, math.inf])


# ---- NannyML's synthetic car-loan data -----------------------------------------------------


@pytest.fixture(scope="module")
def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(reference, analysis)`` of NannyML's car-loan data, analysis labels joined by ``id``."""
    reference, analysis, targets = read_data_files(CAR_LOAN_FILES)
    return reference, analysis.merge(targets, on="id", validate="one_to_one")


@pytest.fixture(scope="module")
def car_loan_estimates(
    car_loan: tuple[pd.DataFrame, pd.DataFrame],
) -> list[tuple[dict[str, float], dict[str, float]]]:
    """Per 5,000-row analysis chunk: ``(estimated, realized)`` ROC AUC, accuracy and F1."""
    reference, analysis = car_loan
    model = CBPE.fit(reference["repaid"], reference["y_pred_proba"], threshold=0.65)
    rows = []
    for start in range(0, len(analysis), CHUNK):
        chunk = analysis.iloc[start : start + CHUNK]
        estimate = model.estimate(chunk["y_pred_proba"])
        y = chunk["repaid"].to_numpy()
        realized = {
            "roc_auc": roc_auc_score(y, chunk["y_pred_proba"]),
            "accuracy": accuracy_score(y, chunk["y_pred"]),
            "f1": f1_score(y, chunk["y_pred"]),
        }
        rows.append(({m: getattr(estimate, m) for m in METRICS}, realized))
    return rows


def test_car_loan_predictions_are_scores_at_or_above_0_65(
    car_loan: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    for frame in car_loan:
        assert ((frame["y_pred_proba"] >= 0.65).astype(int) == frame["y_pred"]).all()
    assert len(car_loan[1]) == 10 * CHUNK


def test_car_loan_estimates_equal_nannyml(
    car_loan_estimates: list[tuple[dict[str, float], dict[str, float]]],
) -> None:
    assert len(car_loan_estimates) == len(NANNYML_ESTIMATES)
    for (estimated, _), theirs in zip(car_loan_estimates, NANNYML_ESTIMATES, strict=True):
        for metric, value in zip(METRICS, theirs, strict=True):
            assert estimated[metric] == pytest.approx(value, abs=1e-8), metric


@pytest.mark.parametrize("metric", METRICS)
def test_car_loan_mae_matches_nannyml_anchor(
    car_loan_estimates: list[tuple[dict[str, float], dict[str, float]]], metric: str
) -> None:
    errors = [abs(estimated[metric] - real[metric]) for estimated, real in car_loan_estimates]
    mae = float(np.mean(errors))
    assert mae <= MEASURED_MAE[metric]
    assert round(mae, 4) <= ANCHOR_MAE[metric]


def test_car_loan_chunk_sketches_merge_into_the_whole(
    car_loan: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, analysis = car_loan
    model = CBPE.fit(reference["repaid"], reference["y_pred_proba"], threshold=0.65)
    scores = analysis["y_pred_proba"]
    chunks = [model.sketch(scores.iloc[at : at + CHUNK]) for at in range(0, len(scores), CHUNK)]
    assert reduce(CBPESketch.merge, chunks) == model.sketch(scores)

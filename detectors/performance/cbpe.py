r"""Confidence-based performance estimation (CBPE) of a binary classifier, without labels.

When a window's labels have not arrived, its ROC AUC, accuracy, precision,
recall, specificity and F1 can still be estimated from the scores alone if the
scores are calibrated probabilities: a row with probability ``p`` of being
positive is a true positive with probability ``p`` when predicted positive,
and a false positive with probability ``1 - p``. This is NannyML's CBPE
(binary case), with the same estimators.

Fitting (:meth:`CBPE.fit`, on labelled reference rows): an isotonic
calibrator ``g`` (:mod:`detectors.performance.calibration`) is fitted on the
reference when :func:`~detectors.performance.calibration.calibration_check`
says it lowers the held-out calibration error (``calibration="auto"``, as
NannyML decides), always (``"isotonic"``) or never (``"none"``). Scores
outside ``[0, 1]`` are always calibrated under ``"auto"``. Without a
calibrator ``p = clip(s, 0, 1)``.

Estimation, for a window with scores ``s_i``, probabilities ``p_i = g(s_i)``
and predictions ``yhat_i = [s_i >= threshold]`` (``threshold`` a parameter,
0.5 by default):

* expected confusion counts ``TP = sum_{yhat=1} p_i``,
  ``FP = sum_{yhat=1} (1 - p_i)``, ``FN = sum_{yhat=0} p_i``,
  ``TN = sum_{yhat=0} (1 - p_i)``;
* ``accuracy = (TP + TN) / n``, ``precision = TP / (TP + FP)``,
  ``recall = TP / (TP + FN)``, ``specificity = TN / (TN + FP)``,
  ``F1 = TP / (TP + (FP + FN) / 2)``: ratios of expected counts, exactly
  NannyML's ``estimate_*`` functions (0.13.1,
  ``performance_estimation/confidence_based/metrics.py``); a zero
  denominator gives ``zero_division`` (0.0, NannyML's value);
* ROC AUC: NannyML's ``estimate_roc_auc`` sorts the rows by decreasing raw
  score and integrates, by trapezoids, the curve of expected rates
  ``TPR_k = sum_{i<=k} p_i / P``, ``FPR_k = sum_{i<=k} (1 - p_i) / N``
  (``P = sum p_i``, ``N = n - P``), that is
  ``AUC = sum_k (1 - p_k) (sum_{i<k} p_i + p_k / 2) / (P N)``.

Mergeable per window (:class:`CBPESketch`): every quantity above is a sum over
rows except the AUC's order. The sketch keeps the four scalar sums of the
confusion counts exactly, and, on ``B`` equal-width bins of the raw score
(default 1,000 on ``[0, 1]``; the bins of
:func:`detectors.quality.classification.score_bin`), the row count ``c_b``,
the sum of probabilities ``s_b`` and the smallest and largest probability
``lo_b``, ``hi_b``. Counts, min and max merge exactly; float sums up to
rounding of the addition order (relative 1e-12).

ROC AUC from the bins, taken in decreasing score order with ``S_b`` the sum of
probabilities in higher bins: treating each bin as one tie group gives
``AUC_bin = sum_b (c_b - s_b) (S_b + s_b / 2) / (P N)``. Against the row-wise
formula only pairs inside a bin differ: a pair ranked ``i`` above ``k``
counts ``p_i (1 - p_k)`` row-wise and ``(p_i (1 - p_k) + p_k (1 - p_i)) / 2``
binned, a difference of ``(p_i - p_k) / 2``, which is ``>= 0`` because the
calibrator is non-decreasing in the score. Summed over a bin's pairs it is at
most ``floor(c_b/2) ceil(c_b/2) (hi_b - lo_b) / 2``. So the row-wise value lies
in ``[AUC_bin, AUC_bin + G]`` with ``G = sum_b floor(c_b/2) ceil(c_b/2)
(hi_b - lo_b) / (2 P N)``; the sketch reports the midpoint ``AUC_bin + G/2``
as ``roc_auc`` and ``G/2`` as ``roc_auc_bound``. When the probability is
constant inside every bin (scores on a grid coarser than the bins, as
NannyML's car-loan data with two-decimal scores, or a calibrator's flat
steps) ``G = 0`` and the binned value equals the row-wise one. ``G`` does not
shrink with more rows (``c_b`` and ``P N`` grow alike); more bins shrink it.
Measured on continuous scores (``tests/detectors/test_cbpe.py``'s generator,
1,000 bins, windows of 2,000 to 200,000 rows, four seeds): with an isotonic
calibrator fitted on 20,000 rows ``G/2`` is 6e-6 to 1.3e-5 and the actual
difference from the row-wise formula 3e-6 to 6e-6 (the calibrator's linear
ramps between its steps vary inside a bin); with the scores used as
probabilities, 3e-7 and 1e-7. NannyML also rounds its cumulative sums to 5
decimals; this module does not (a difference of about 1e-9 on the car-loan data).

Validation on NannyML's synthetic car-loan data (50,000 reference rows,
50,000 analysis rows in ten 5,000-row chunks, threshold 0.65, which is how the
data's ``y_pred`` was made): mean absolute error of the estimate against the
realized metric per chunk, this module versus NannyML 0.13.1's CBPE on the
same chunks (``benchmarks/cbpe.py``):

============  ==========  ==========  ==============================
metric        driftline   NannyML     largest chunk |driftline - NML|
============  ==========  ==========  ==============================
ROC AUC       0.0021154   0.0021154   1.3e-9
accuracy      0.0031122   0.0031122   2.2e-16
F1            0.0025754   0.0025754   2.2e-16
============  ==========  ==========  ==============================

The estimates are NannyML's (same calibrator, same formulas), so the errors
are NannyML's: they equal the anchors quoted for NannyML (0.0021, 0.0031,
0.0026) at their four decimals and do not beat them. They cannot be beaten by
much on ten chunks: a chunk's realized accuracy itself varies around its
expectation by about ``sqrt(acc (1 - acc) / 5000)`` = 0.0036 here, so an
estimator that knew every row's true probability would still show an MAE of
about 0.003.

>>> rng = np.random.default_rng(0)
>>> p = rng.random(2000)
>>> y = (rng.random(2000) < p).astype(int)
>>> model = CBPE.fit(y, p, calibration="none")
>>> estimate = model.estimate(rng.random(500))
>>> round(estimate.accuracy, 3), round(estimate.roc_auc, 3), estimate.rows
(0.756, 0.839, 500)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.errors import IncompatibleSketchError, InvalidParameterError, check_version
from detectors.performance.calibration import (
    CalibrationCheck,
    IsotonicCalibrator,
    calibration_check,
)
from detectors.quality._labels import finite_floats, label_codes, same_length
from detectors.quality.classification import (
    DEFAULT_SCORE_BINS,
    MAX_BINS,
    _positive_label,
    score_bin,
)

CBPE_FORMAT_VERSION = 1
CBPE_SKETCH_FORMAT_VERSION = 1
Calibration = Literal["auto", "isotonic", "none"]
#: Accepted values of ``calibration``.
CALIBRATIONS: tuple[str, ...] = ("auto", "isotonic", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class PerformanceEstimate:
    """Estimated quality of a binary classifier over one window, from its scores only.

    ``true_positives`` ... ``false_negatives`` are expected counts (see the
    module docstring); ``expected_positives`` is ``sum p_i``. ``roc_auc_bound``
    is the maximum difference between ``roc_auc`` and NannyML's row-wise
    formula on the same rows. Undefined values (empty window, AUC without
    expected positives or negatives) are NaN.
    """

    rows: int
    threshold: float
    predicted_positives: int
    expected_positives: float
    true_positives: float
    false_positives: float
    true_negatives: float
    false_negatives: float
    accuracy: float
    precision: float
    recall: float
    specificity: float
    f1: float
    roc_auc: float
    roc_auc_bound: float
    zero_division: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN as None)."""
        return {
            "rows": self.rows,
            "threshold": self.threshold,
            "predicted_positives": self.predicted_positives,
            "expected_positives": self.expected_positives,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "true_negatives": self.true_negatives,
            "false_negatives": self.false_negatives,
            "accuracy": _json_float(self.accuracy),
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
            "specificity": _json_float(self.specificity),
            "f1": _json_float(self.f1),
            "roc_auc": _json_float(self.roc_auc),
            "roc_auc_bound": _json_float(self.roc_auc_bound),
            "zero_division": _json_float(self.zero_division),
        }


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CBPESketch:
    """Mergeable summary of one window's scores for :class:`CBPE` (see the module docstring).

    ``model`` is the :attr:`CBPE.model` fingerprint of the estimator that
    built it: sketches merge only with sketches of the same fitted estimator.
    Per score bin: ``counts`` rows, ``probability`` sum of calibrated
    probabilities, ``low``/``high`` their min and max (NaN when empty).
    ``predicted_positive`` rows have ``score >= threshold``;
    ``positive_probability`` and ``negative_probability`` are the sums of the
    probabilities of predicted positives (expected TP) and negatives (FN).
    """

    model: str
    threshold: float
    bins: int
    score_range: tuple[float, float]
    counts: IntArray
    probability: FloatArray
    low: FloatArray
    high: FloatArray
    predicted_positive: int = 0
    positive_probability: float = 0.0
    negative_probability: float = 0.0

    format: ClassVar[str] = "driftline.cbpe_sketch"

    @property
    def rows(self) -> int:
        """Number of rows summarised."""
        return int(self.counts.sum())

    def same_config(self, other: CBPESketch) -> bool:
        """Whether ``other`` comes from the same fitted estimator and bins (so the two merge)."""
        return (
            self.model == other.model
            and self.threshold == other.threshold
            and self.bins == other.bins
            and self.score_range == other.score_range
        )

    def merge(self, other: CBPESketch) -> CBPESketch:
        """Return the sketch of the union of both windows' rows."""
        if not self.same_config(other):
            raise IncompatibleSketchError(
                "cannot merge CBPE sketches of different fitted estimators or bins: "
                f"{self.model} and {other.model}"
            )
        return CBPESketch(
            model=self.model,
            threshold=self.threshold,
            bins=self.bins,
            score_range=self.score_range,
            counts=self.counts + other.counts,
            probability=self.probability + other.probability,
            low=np.fmin(self.low, other.low),
            high=np.fmax(self.high, other.high),
            predicted_positive=self.predicted_positive + other.predicted_positive,
            positive_probability=self.positive_probability + other.positive_probability,
            negative_probability=self.negative_probability + other.negative_probability,
        )

    def estimate(self, zero_division: float = 0.0) -> PerformanceEstimate:
        """Return the estimated metrics of the window (formulas in the module docstring).

        ``zero_division`` is the value of a precision, recall, specificity or
        F1 whose denominator is zero: 0.0 (default, NannyML's), 1.0 or NaN.
        """
        if not (math.isnan(zero_division) or zero_division in (0.0, 1.0)):
            raise InvalidParameterError("zero_division", "0.0, 1.0 or NaN", zero_division)
        n = self.rows
        tp = self.positive_probability
        fn = self.negative_probability
        fp = self.predicted_positive - tp
        tn = (n - self.predicted_positive) - fn
        auc, bound = self.roc_auc()
        return PerformanceEstimate(
            rows=n,
            threshold=self.threshold,
            predicted_positives=self.predicted_positive,
            expected_positives=tp + fn,
            true_positives=tp,
            false_positives=fp,
            true_negatives=tn,
            false_negatives=fn,
            accuracy=(tp + tn) / n if n else math.nan,
            precision=_ratio(tp, tp + fp, n, zero_division),
            recall=_ratio(tp, tp + fn, n, zero_division),
            specificity=_ratio(tn, tn + fp, n, zero_division),
            f1=_ratio(tp, tp + (fp + fn) / 2, n, zero_division),
            roc_auc=auc,
            roc_auc_bound=bound,
            zero_division=zero_division,
        )

    def roc_auc(self) -> tuple[float, float]:
        """Return ``(AUC, bound)``: the binned ROC AUC estimate and its maximum error.

        NaN for both when the expected positives ``P`` or negatives ``N`` are 0.
        """
        counts = self.counts[::-1].astype(np.float64)  # decreasing score
        sums = self.probability[::-1]
        positives = float(sums.sum())
        pairs = positives * (float(counts.sum()) - positives)
        if not pairs > 0:
            return math.nan, math.nan
        above = np.cumsum(sums) - sums
        binned = float(np.sum((counts - sums) * (above + sums / 2))) / pairs
        spread = np.where(counts > 1, self.high[::-1] - self.low[::-1], 0.0)
        half = counts // 2
        gap = float(np.sum(half * (counts - half) * spread)) / (2 * pairs)
        return binned + gap / 2, gap / 2

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CBPESketch):
            return NotImplemented
        return (
            self.same_config(other)
            and np.array_equal(self.counts, other.counts)
            and self.predicted_positive == other.predicted_positive
            and np.array_equal(self.low, other.low, equal_nan=True)
            and np.array_equal(self.high, other.high, equal_nan=True)
            and bool(np.allclose(self.probability, other.probability, rtol=1e-12, atol=1e-9))
            and math.isclose(
                self.positive_probability, other.positive_probability, rel_tol=1e-12, abs_tol=1e-9
            )
            and math.isclose(
                self.negative_probability, other.negative_probability, rel_tol=1e-12, abs_tol=1e-9
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict (empty bins' min/max as None)."""
        return {
            "format": self.format,
            "version": CBPE_SKETCH_FORMAT_VERSION,
            "model": self.model,
            "threshold": self.threshold,
            "bins": self.bins,
            "score_range": list(self.score_range),
            "counts": self.counts.tolist(),
            "probability": self.probability.tolist(),
            "low": [_json_float(v) for v in self.low.tolist()],
            "high": [_json_float(v) for v in self.high.tolist()],
            "predicted_positive": self.predicted_positive,
            "positive_probability": self.positive_probability,
            "negative_probability": self.negative_probability,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPESketch:
        """Rebuild a sketch from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, CBPE_SKETCH_FORMAT_VERSION)
        bins = int(data["bins"])
        counts = np.asarray(data["counts"], dtype=np.int64)
        probability = np.asarray(data["probability"], dtype=np.float64)
        low = np.asarray([_float(v) for v in data["low"]], dtype=np.float64)
        high = np.asarray([_float(v) for v in data["high"]], dtype=np.float64)
        named = {"counts": counts, "probability": probability, "low": low, "high": high}
        for name, array in named.items():
            if array.shape != (bins,):
                raise IncompatibleSketchError(
                    f"CBPE sketch {name} has {array.size} bins, not {bins}"
                )
        lo, hi = data["score_range"]
        return cls(
            model=str(data["model"]),
            threshold=float(data["threshold"]),
            bins=bins,
            score_range=(float(lo), float(hi)),
            counts=counts,
            probability=probability,
            low=low,
            high=high,
            predicted_positive=int(data["predicted_positive"]),
            positive_probability=float(data["positive_probability"]),
            negative_probability=float(data["negative_probability"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CBPE:
    """A confidence-based performance estimator fitted on a labelled reference.

    Build with :meth:`fit`; summarise a window's scores with :meth:`sketch`
    (merge sketches of parts of a window with :meth:`CBPESketch.merge`) and
    read the estimates with :meth:`CBPESketch.estimate`, or do both with
    :meth:`estimate`. ``calibrator`` is None when the scores are used as
    probabilities; ``check`` says why. ``model`` fingerprints everything that
    changes an estimate (threshold, bins, calibrator).
    """

    positive_label: str
    threshold: float
    calibration: Calibration
    score_bins: int
    score_range: tuple[float, float]
    calibrator: IsotonicCalibrator | None
    check: CalibrationCheck
    reference_rows: int
    model: str = field(init=False)

    format: ClassVar[str] = "driftline.cbpe"

    def __post_init__(self) -> None:
        _check_config(self.threshold, self.calibration, self.score_bins, self.score_range)
        object.__setattr__(self, "model", self._fingerprint())

    @classmethod
    def fit(
        cls,
        y_true: Any,
        y_score: Any,
        positive_label: object = None,
        *,
        threshold: float = 0.5,
        calibration: Calibration = "auto",
        score_bins: int = DEFAULT_SCORE_BINS,
        score_range: tuple[float, float] = (0.0, 1.0),
        seed: int = 42,
    ) -> CBPE:
        """Fit on reference rows with true labels ``y_true`` and positive-class scores ``y_score``.

        Rows with ``y_score >= threshold`` are predicted positive.
        ``positive_label`` defaults to 1 (true) for labels within {0, 1},
        {-1, 1} or {false, true}, as in
        :class:`~detectors.quality.ClassificationSketch`. ``calibration``:
        ``"auto"`` (calibrate when
        :func:`~detectors.performance.calibration.calibration_check` says so,
        its splits seeded with ``seed``), ``"isotonic"`` or ``"none"`` (scores
        must then lie in ``[0, 1]``). ``score_bins`` equal-width bins over
        ``score_range`` order the rows for ROC AUC. The reference needs both
        classes, no missing labels and finite scores.
        """
        _check_config(threshold, calibration, score_bins, score_range)
        codes, labels = label_codes(y_true, "y_true")
        scores = finite_floats(y_score, "y_score")
        same_length("y_score", codes.size, scores)
        positive = _positive_label(positive_label, tuple(sorted(labels)))
        is_positive = codes == (labels.index(positive) if positive in labels else -1)
        if is_positive.all() or not is_positive.any():
            raise InvalidParameterError(
                "y_true", f"labels with both {positive!r} and another label", sorted(labels)
            )
        probabilities = bool(((scores >= 0) & (scores <= 1)).all())
        if calibration == "none":
            if not probabilities:
                raise InvalidParameterError(
                    "y_score", "within [0, 1] with calibration='none'", "scores outside [0, 1]"
                )
            check = CalibrationCheck(needed=False, reason="calibration='none'")
        elif calibration == "isotonic":
            check = CalibrationCheck(needed=True, reason="calibration='isotonic'")
        elif not probabilities:
            check = CalibrationCheck(needed=True, reason="scores outside [0, 1]")
        else:
            check = calibration_check(scores, is_positive, seed=seed)
        calibrator = IsotonicCalibrator.fit(scores, is_positive) if check.needed else None
        return cls(
            positive_label=positive,
            threshold=float(threshold),
            calibration=calibration,
            score_bins=score_bins,
            score_range=(float(score_range[0]), float(score_range[1])),
            calibrator=calibrator,
            check=check,
            reference_rows=int(codes.size),
        )

    def calibrate(self, y_score: Any) -> FloatArray:
        """Return the calibrated probabilities ``p_i`` of finite scores ``y_score``."""
        scores = finite_floats(y_score, "y_score")
        return self._probabilities(scores)

    def sketch(self, y_score: Any) -> CBPESketch:
        """Return the :class:`CBPESketch` of a window's finite scores (labels not needed)."""
        scores = finite_floats(y_score, "y_score")
        p = self._probabilities(scores)
        lo, hi = self.score_range
        index = score_bin(scores, self.score_bins, lo, hi)
        predicted = scores >= self.threshold
        counts = np.bincount(index, minlength=self.score_bins).astype(np.int64)
        low = np.full(self.score_bins, np.inf)
        high = np.full(self.score_bins, -np.inf)
        np.minimum.at(low, index, p)
        np.maximum.at(high, index, p)
        low[counts == 0] = np.nan
        high[counts == 0] = np.nan
        return CBPESketch(
            model=self.model,
            threshold=self.threshold,
            bins=self.score_bins,
            score_range=self.score_range,
            counts=counts,
            probability=np.bincount(index, weights=p, minlength=self.score_bins).astype(np.float64),
            low=low,
            high=high,
            predicted_positive=int(predicted.sum()),
            positive_probability=float(p[predicted].sum()),
            negative_probability=float(p[~predicted].sum()),
        )

    def empty_sketch(self) -> CBPESketch:
        """Return the sketch of a window without rows (the identity of :meth:`CBPESketch.merge`)."""
        return self.sketch(np.zeros(0))

    def estimate(self, y_score: Any, zero_division: float = 0.0) -> PerformanceEstimate:
        """Return the estimated metrics of one window's scores: ``sketch(y_score).estimate()``."""
        return self.sketch(y_score).estimate(zero_division)

    def _probabilities(self, scores: FloatArray) -> FloatArray:
        if self.calibrator is None:
            return np.clip(scores, 0.0, 1.0)
        return self.calibrator.predict(scores)

    def _fingerprint(self) -> str:
        content = {
            "threshold": self.threshold,
            "bins": self.score_bins,
            "score_range": list(self.score_range),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
        }
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8"))
        return digest.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CBPE):
            return NotImplemented
        return (
            self.model == other.model
            and self.positive_label == other.positive_label
            and self.calibration == other.calibration
            and self.check == other.check
            and self.reference_rows == other.reference_rows
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict of the fitted estimator."""
        return {
            "format": self.format,
            "version": CBPE_FORMAT_VERSION,
            "positive_label": self.positive_label,
            "threshold": self.threshold,
            "calibration": self.calibration,
            "score_bins": self.score_bins,
            "score_range": list(self.score_range),
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "check": self.check.to_dict(),
            "reference_rows": self.reference_rows,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CBPE:
        """Rebuild a fitted estimator from :meth:`to_dict` output; newer versions are refused."""
        check_version(data, cls.format, CBPE_FORMAT_VERSION)
        calibration = str(data["calibration"])
        if calibration not in CALIBRATIONS:
            raise InvalidParameterError("calibration", f"one of {CALIBRATIONS}", calibration)
        lo, hi = data["score_range"]
        return cls(
            positive_label=str(data["positive_label"]),
            threshold=float(data["threshold"]),
            calibration=calibration,  # type: ignore[arg-type]  # checked just above
            score_bins=int(data["score_bins"]),
            score_range=(float(lo), float(hi)),
            calibrator=(
                None
                if data["calibrator"] is None
                else IsotonicCalibrator.from_dict(data["calibrator"])
            ),
            check=CalibrationCheck.from_dict(data["check"]),
            reference_rows=int(data["reference_rows"]),
        )


def _check_config(
    threshold: float, calibration: str, bins: int, score_range: tuple[float, float]
) -> None:
    if not (isinstance(threshold, int | float) and math.isfinite(threshold)):
        raise InvalidParameterError("threshold", "a finite number", threshold)
    if calibration not in CALIBRATIONS:
        raise InvalidParameterError("calibration", f"one of {CALIBRATIONS}", calibration)
    if not (isinstance(bins, int) and 1 <= bins <= MAX_BINS):
        raise InvalidParameterError("score_bins", f"an integer between 1 and {MAX_BINS}", bins)
    lo, hi = score_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidParameterError(
            "score_range", "(low, high) with finite low < high", score_range
        )


def _ratio(numerator: float, denominator: float, rows: int, zero_division: float) -> float:
    if not rows:
        return math.nan
    return numerator / denominator if denominator != 0 else zero_division


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)

r"""Classification quality from a bounded, mergeable sketch of labelled rows.

A :class:`ClassificationSketch` keeps, for one window of rows whose true
labels are known:

* the confusion counts ``C[t, p]`` (rows with true label ``t`` predicted ``p``),
  labels compared as strings (:func:`detectors.labels.canonical_label`, so
  ``1``, ``1.0`` and ``"1"`` are one label);
* for binary problems with a score (the predicted probability of the positive
  label), a :class:`BinaryScoreSketch`: histograms of the score of positives
  and of negatives on ``B`` equal-width bins (default 1,000), the exact sums of
  the log loss and of the squared error, and ``M`` calibration bins (default
  15) holding the count, the sum of scores and the number of positives.

Its size depends on the number of labels, ``B`` and ``M``, never on the row
count. Merging two sketches gives the sketch of the union of their rows:
counts and histograms exactly, float sums up to rounding of the addition order
(relative 1e-12).

Metrics (:meth:`ClassificationSketch.metrics`), all equal to scikit-learn's on
the same rows (up to float rounding), with ``n`` rows, ``tp_k = C[k, k]``,
``pred_k = sum_t C[t, k]``, ``true_k = sum_p C[k, p]``:

* accuracy ``sum_k tp_k / n``;
* per label ``precision = tp / pred``, ``recall = tp / true``,
  ``F1 = 2 tp / (true + pred)``; a zero denominator gives ``zero_division``
  (default 0.0, scikit-learn's default value, without its warning; 1.0 and NaN
  are accepted too, with scikit-learn's meaning). The labels are every label
  seen as true or predicted (plus any declared with ``labels=``), as
  scikit-learn's ``labels=None``;
* macro averages: the unweighted mean over labels, ignoring NaN (as
  scikit-learn does with ``zero_division=np.nan``);
* log loss ``(1/n) sum -log(clip(q, eps, 1 - eps))`` with ``q = p`` for
  positives, ``q = 1 - p`` for negatives and ``eps`` float64's machine epsilon,
  as ``sklearn.metrics.log_loss`` clips;
* Brier score ``(1/n) sum (y - p)^2`` with ``y`` 1 for positives, else 0;
* expected calibration error on ``M`` equal-width bins
  ``[0, 1/M], (1/M, 2/M], ..., ((M-1)/M, 1]`` (the bins of
  ``sklearn.calibration.calibration_curve(strategy="uniform")``):
  ``ECE = sum_b (n_b / n) |mean score_b - positive share_b|
  = (1/n) sum_b |sum of scores_b - positives_b|``. 15 bins by default, as in
  Guo et al. (2017), "On calibration of modern neural networks".

With scores, rows whose true label is ``positive_label`` are positives and all
others negatives (one-vs-rest: the usual binary definitions when there are two
labels). Log loss, Brier score and ECE need probabilities: when any score lies
outside ``[0, 1]`` they are NaN (scikit-learn raises); ROC AUC and average
precision accept any real score (set ``score_range`` to the scores' range).

ROC AUC and average precision come from the score histograms. Bin ``b`` of
``B`` on ``score_range = [lo, hi]`` is ``floor(B (s - lo) / (hi - lo))``,
clipped to ``[0, B - 1]``: scores outside the range fall in the end bins. The
map is non-decreasing in ``s`` (every rounded floating-point step is
monotone), so two scores in different bins are ordered as the scores are and
the histograms lose only the order *within* a bin. With ``P`` positives, ``N``
negatives, ``p_b``/``n_b`` per bin and ``N_{<b}`` the negatives below bin
``b``:

* ROC AUC. ``AUC = P(s+ > s-) + P(s+ = s-)/2`` over positive-negative pairs.
  Pairs in different bins count identically from the histograms; a pair in one
  bin counts between 0 and 1 exactly and 1/2 from the histogram (ties count
  1/2, as in scikit-learn's trapezoids). Hence
  ``AUC_hist = sum_b p_b (N_{<b} + n_b / 2) / (P N)`` and
  ``|AUC_hist - AUC_exact| <= sum_b p_b n_b / (2 P N)``, half the probability
  that a random positive and negative share a bin: reported as
  ``roc_auc_bound``. It is 0 when every bin holds scores of one class only.
* Average precision ``AP = sum over thresholds (R_k - R_{k-1}) Prec_k``
  (scikit-learn's, not interpolated). From the histograms each bin is one
  threshold: with ``A`` positives and ``D`` rows in higher bins,
  ``AP_hist = sum_b (p_b / P) (A + p_b) / (D + p_b + n_b)``. Bins above ``b``
  enter the exact precision of ``b``'s thresholds only through ``A`` and ``D``,
  so the error splits by bin. Inside bin ``b`` every positive is credited the
  precision ``(A + T) / (D + T + F)`` of the end of its tie group, after ``T``
  positives and ``F`` negatives of the bin; that is at most
  ``(A + p_b) / (D + p_b)`` (``A <= D``: increasing in ``T``, decreasing in
  ``F``) and, for the ``t``-th positive (``T >= t``, ``F <= n_b``), at least
  ``(A + t) / (D + n_b + t)``. So ``AP_exact`` lies in ``[L, U]`` with
  ``U = sum_b (p_b / P) (A + p_b) / (D + p_b)`` and
  ``L = sum_b (1 / P) sum_{t=1}^{p_b} (A + t) / (C_b + t)``, ``C_b = D + n_b``
  (a digamma difference), and ``AP_hist`` lies in it too; the reported
  ``average_precision_bound`` is ``max(U - AP_hist, AP_hist - L)``. Unlike the
  AUC bound it is not zero for bins of one class: the order of positives among
  themselves changes AP when ``A < D``.

Both bounds are computed from the sketch itself, per window. Measured on
seeded data (30% positives, scores ``sigmoid(N(0, 1) + y - 1)``, 1,000 bins,
``tests/detectors/test_quality.py``): from 2,000 to 200,000 rows the AUC
bound is about 5e-4 and the actual AUC error about 4e-6; the AP bound is
about 1.6e-3 and the actual AP error about 3.5e-4. Neither shrinks with more
rows: both come from the order within bins, which more bins reduce.

Empty sketches, and metrics with an empty denominator (AUC without positives
or without negatives), give NaN, never an exception.

>>> sketch = ClassificationSketch.from_arrays(
...     [0, 1, 1, 0, 1], [0, 1, 0, 0, 1], scores=[0.1, 0.8, 0.4, 0.3, 0.9]
... )
>>> m = sketch.metrics()
>>> m.accuracy, m.for_label("1").recall, m.roc_auc, m.roc_auc_bound
(0.8, 0.6666666666666666, 1.0, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.errors import IncompatibleSketchError, InvalidParameterError, check_version
from detectors.labels import canonical_label
from detectors.quality._labels import finite_floats, label_codes, same_length

CLASSIFICATION_FORMAT_VERSION = 1
#: Default number of equal-width score bins of the ROC AUC and average-precision histograms.
DEFAULT_SCORE_BINS = 1000
#: Default number of equal-width calibration bins of the expected calibration error.
DEFAULT_CALIBRATION_BINS = 15
#: Largest number of histogram or calibration bins accepted.
MAX_BINS = 1_000_000
_EPS = float(np.finfo(np.float64).eps)
#: Labels taken as the positive label when none is given, as scikit-learn's ``pos_label=None``.
_DEFAULT_POSITIVES = {
    frozenset({"0", "1"}): "1",
    frozenset({"-1", "1"}): "1",
    frozenset({"false", "true"}): "true",
}


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class BinaryScoreSketch:
    """Histograms and exact sums of a binary classifier's positive-class scores.

    ``positives``/``negatives`` count the scores of rows whose true label is or
    is not ``positive_label`` on ``bins`` equal-width bins over ``score_range``
    (end bins take the scores outside it). ``calibration_*`` are the count, sum
    of scores and positives on ``calibration_bins`` equal-width bins of
    ``[0, 1]``. ``outside_unit`` counts scores outside ``[0, 1]``.
    """

    positive_label: str
    bins: int
    score_range: tuple[float, float]
    calibration_bins: int
    positives: IntArray
    negatives: IntArray
    log_loss_positive: float = 0.0
    log_loss_negative: float = 0.0
    squared_error: float = 0.0
    calibration_count: IntArray
    calibration_score: FloatArray
    calibration_positive: IntArray
    outside_unit: int = 0

    @classmethod
    def empty(
        cls,
        positive_label: str,
        *,
        bins: int = DEFAULT_SCORE_BINS,
        score_range: tuple[float, float] = (0.0, 1.0),
        calibration_bins: int = DEFAULT_CALIBRATION_BINS,
    ) -> BinaryScoreSketch:
        """Return the score sketch of zero rows with this configuration."""
        _check_config(bins, score_range, calibration_bins)
        zeros = np.zeros(bins, dtype=np.int64)
        return cls(
            positive_label=positive_label,
            bins=bins,
            score_range=(float(score_range[0]), float(score_range[1])),
            calibration_bins=calibration_bins,
            positives=zeros,
            negatives=zeros.copy(),
            calibration_count=np.zeros(calibration_bins, dtype=np.int64),
            calibration_score=np.zeros(calibration_bins, dtype=np.float64),
            calibration_positive=np.zeros(calibration_bins, dtype=np.int64),
        )

    @classmethod
    def from_scores(
        cls,
        scores: FloatArray,
        positive: np.ndarray,
        positive_label: str,
        *,
        bins: int = DEFAULT_SCORE_BINS,
        score_range: tuple[float, float] = (0.0, 1.0),
        calibration_bins: int = DEFAULT_CALIBRATION_BINS,
    ) -> BinaryScoreSketch:
        """Return the sketch of finite ``scores`` whose rows are positive where ``positive``."""
        _check_config(bins, score_range, calibration_bins)
        lo, hi = float(score_range[0]), float(score_range[1])
        positive = np.asarray(positive, dtype=bool)
        index = score_bin(scores, bins, lo, hi)
        calibration = calibration_bin(scores, calibration_bins)
        y = positive.astype(np.float64)
        clipped = np.clip(scores, _EPS, 1 - _EPS)
        # Clip 1 - p, not p, for negatives: that is what log_loss does with a 1-d y_proba.
        clipped_complement = np.clip(1 - scores, _EPS, 1 - _EPS)
        return cls(
            positive_label=positive_label,
            bins=bins,
            score_range=(lo, hi),
            calibration_bins=calibration_bins,
            positives=np.bincount(index[positive], minlength=bins).astype(np.int64),
            negatives=np.bincount(index[~positive], minlength=bins).astype(np.int64),
            log_loss_positive=float(-np.log(clipped[positive]).sum()),
            log_loss_negative=float(-np.log(clipped_complement[~positive]).sum()),
            squared_error=float(np.square(y - scores).sum()),
            calibration_count=np.bincount(calibration, minlength=calibration_bins).astype(np.int64),
            calibration_score=np.bincount(
                calibration, weights=scores, minlength=calibration_bins
            ).astype(np.float64),
            calibration_positive=np.bincount(
                calibration[positive], minlength=calibration_bins
            ).astype(np.int64),
            outside_unit=int(((scores < 0) | (scores > 1)).sum()),
        )

    @property
    def rows(self) -> int:
        """Number of scored rows."""
        return int(self.positives.sum() + self.negatives.sum())

    def same_config(self, other: BinaryScoreSketch) -> bool:
        """Whether ``other`` has the same positive label and bins (so the two merge)."""
        return (
            self.positive_label == other.positive_label
            and self.bins == other.bins
            and self.score_range == other.score_range
            and self.calibration_bins == other.calibration_bins
        )

    def merge(self, other: BinaryScoreSketch) -> BinaryScoreSketch:
        """Return the score sketch of the union of both sets of rows."""
        if not self.same_config(other):
            raise IncompatibleSketchError(
                "cannot merge score sketches with different positive labels or bins: "
                f"{self._config()} and {other._config()}"
            )
        return BinaryScoreSketch(
            positive_label=self.positive_label,
            bins=self.bins,
            score_range=self.score_range,
            calibration_bins=self.calibration_bins,
            positives=self.positives + other.positives,
            negatives=self.negatives + other.negatives,
            log_loss_positive=self.log_loss_positive + other.log_loss_positive,
            log_loss_negative=self.log_loss_negative + other.log_loss_negative,
            squared_error=self.squared_error + other.squared_error,
            calibration_count=self.calibration_count + other.calibration_count,
            calibration_score=self.calibration_score + other.calibration_score,
            calibration_positive=self.calibration_positive + other.calibration_positive,
            outside_unit=self.outside_unit + other.outside_unit,
        )

    def roc_auc(self) -> tuple[float, float]:
        """Return ``(AUC, bound)``: ROC AUC from the histograms and its maximum error.

        NaN for both without positives or without negatives.
        """
        pos = self.positives.astype(np.float64)
        neg = self.negatives.astype(np.float64)
        pairs = float(pos.sum()) * float(neg.sum())
        if pairs == 0:
            return math.nan, math.nan
        below = np.cumsum(neg) - neg
        surely_above = float(pos @ below) / pairs
        same_bin = float(pos @ neg) / pairs
        return surely_above + same_bin / 2, same_bin / 2

    def average_precision(self) -> tuple[float, float]:
        """Return ``(AP, bound)``: average precision from the histograms and its maximum error.

        NaN for both without positives.
        """
        pos = self.positives[::-1].astype(np.float64)
        neg = self.negatives[::-1].astype(np.float64)
        total = float(pos.sum())
        if total == 0:
            return math.nan, math.nan
        seen = np.cumsum(pos)
        rows = np.cumsum(pos + neg)
        keep = pos > 0
        p, n, tp, rows_to = pos[keep], neg[keep], seen[keep], rows[keep]
        above, rows_above = tp - p, rows_to - p - n
        estimate = float(np.sum(p * tp / rows_to)) / total
        upper = float(np.sum(p * tp / (rows_above + p))) / total
        # sum_{t=1..p} (A + t) / (C + t) = p - (C - A) (psi(C + p + 1) - psi(C + 1))
        from scipy.special import digamma  # here: importing scipy.special takes ~0.1 s

        c = rows_above + n
        worst = p - (c - above) * (digamma(c + p + 1) - digamma(c + 1))
        lower = min(float(np.sum(worst)) / total, estimate)
        return estimate, max(upper - estimate, estimate - lower)

    def _metric_fields(self) -> dict[str, Any]:
        """Return the score fields of :class:`ClassificationMetrics`, keyed by field name."""
        auc, auc_bound = self.roc_auc()
        ap, ap_bound = self.average_precision()
        return {
            "scored_rows": self.rows,
            "roc_auc": auc,
            "roc_auc_bound": auc_bound,
            "average_precision": ap,
            "average_precision_bound": ap_bound,
            "log_loss": self.log_loss(),
            "brier_score": self.brier_score(),
            "expected_calibration_error": self.expected_calibration_error(),
        }

    def log_loss(self) -> float:
        """Mean log loss of the scored rows (NaN without rows or with scores outside [0, 1])."""
        return self._probability_mean(self.log_loss_positive + self.log_loss_negative)

    def brier_score(self) -> float:
        """Mean squared error of the scores (NaN without rows or with scores outside [0, 1])."""
        return self._probability_mean(self.squared_error)

    def expected_calibration_error(self) -> float:
        """ECE on the calibration bins (NaN without rows or with scores outside [0, 1])."""
        gaps = np.abs(self.calibration_score - self.calibration_positive)
        return self._probability_mean(float(gaps.sum()))

    def _probability_mean(self, total: float) -> float:
        n = self.rows
        return total / n if n and not self.outside_unit else math.nan

    def _config(self) -> str:
        return (
            f"positive {self.positive_label!r}, {self.bins} bins on {self.score_range}, "
            f"{self.calibration_bins} calibration bins"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BinaryScoreSketch):
            return NotImplemented
        counts = ("positives", "negatives", "calibration_count", "calibration_positive")
        return (
            self.same_config(other)
            and all(np.array_equal(getattr(self, a), getattr(other, a)) for a in counts)
            and self.outside_unit == other.outside_unit
            and bool(
                np.allclose(
                    [self.log_loss_positive, self.log_loss_negative, self.squared_error],
                    [other.log_loss_positive, other.log_loss_negative, other.squared_error],
                    rtol=1e-12,
                    atol=1e-9,
                )
            )
            and bool(
                np.allclose(self.calibration_score, other.calibration_score, rtol=1e-12, atol=1e-9)
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this score sketch."""
        return {
            "positive_label": self.positive_label,
            "bins": self.bins,
            "score_range": list(self.score_range),
            "calibration_bins": self.calibration_bins,
            "positives": self.positives.tolist(),
            "negatives": self.negatives.tolist(),
            "log_loss_positive": self.log_loss_positive,
            "log_loss_negative": self.log_loss_negative,
            "squared_error": self.squared_error,
            "calibration_count": self.calibration_count.tolist(),
            "calibration_score": self.calibration_score.tolist(),
            "calibration_positive": self.calibration_positive.tolist(),
            "outside_unit": self.outside_unit,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinaryScoreSketch:
        """Rebuild a score sketch from :meth:`to_dict` output."""
        bins, calibration_bins = int(data["bins"]), int(data["calibration_bins"])
        lo, hi = (float(v) for v in data["score_range"])
        arrays = {
            "positives": (np.int64, bins),
            "negatives": (np.int64, bins),
            "calibration_count": (np.int64, calibration_bins),
            "calibration_score": (np.float64, calibration_bins),
            "calibration_positive": (np.int64, calibration_bins),
        }
        loaded: dict[str, Any] = {}
        for name, (dtype, size) in arrays.items():
            loaded[name] = np.asarray(data[name], dtype=dtype)
            if loaded[name].shape != (size,):
                raise IncompatibleSketchError(
                    f"score sketch field {name!r} has {loaded[name].size} bins; expected {size}"
                )
        return cls(
            positive_label=str(data["positive_label"]),
            bins=bins,
            score_range=(lo, hi),
            calibration_bins=calibration_bins,
            log_loss_positive=float(data["log_loss_positive"]),
            log_loss_negative=float(data["log_loss_negative"]),
            squared_error=float(data["squared_error"]),
            outside_unit=int(data["outside_unit"]),
            **loaded,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassMetrics:
    """Precision, recall and F1 of one label.

    ``support`` rows have the label as true label, ``predicted`` rows as prediction.
    """

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN as None)."""
        return {
            "label": self.label,
            "precision": _json_float(self.precision),
            "recall": _json_float(self.recall),
            "f1": _json_float(self.f1),
            "support": self.support,
            "predicted": self.predicted,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassificationMetrics:
    """Quality of a classifier over one set of labelled rows.

    ``rows`` counts all rows and ``scored_rows`` those with a score (equal when
    scores were given, else 0). ``*_bound`` fields are the maximum absolute
    difference from the value on the raw scores (see the module docstring).
    Undefined values are NaN.
    """

    rows: int
    accuracy: float
    classes: tuple[ClassMetrics, ...]
    macro_precision: float
    macro_recall: float
    macro_f1: float
    zero_division: float
    positive_label: str | None
    scored_rows: int
    roc_auc: float
    roc_auc_bound: float
    average_precision: float
    average_precision_bound: float
    log_loss: float
    brier_score: float
    expected_calibration_error: float

    def for_label(self, label: object) -> ClassMetrics:
        """Return the metrics of ``label`` (as its canonical string); KeyError if absent."""
        key = canonical_label(label)
        for metrics in self.classes:
            if metrics.label == key:
                return metrics
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN as None)."""
        return {
            "rows": self.rows,
            "accuracy": _json_float(self.accuracy),
            "classes": [c.to_dict() for c in self.classes],
            "macro_precision": _json_float(self.macro_precision),
            "macro_recall": _json_float(self.macro_recall),
            "macro_f1": _json_float(self.macro_f1),
            "zero_division": _json_float(self.zero_division),
            "positive_label": self.positive_label,
            "scored_rows": self.scored_rows,
            "roc_auc": _json_float(self.roc_auc),
            "roc_auc_bound": _json_float(self.roc_auc_bound),
            "average_precision": _json_float(self.average_precision),
            "average_precision_bound": _json_float(self.average_precision_bound),
            "log_loss": _json_float(self.log_loss),
            "brier_score": _json_float(self.brier_score),
            "expected_calibration_error": _json_float(self.expected_calibration_error),
        }


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ClassificationSketch:
    """Confusion counts of labelled rows and, for binary scores, a :class:`BinaryScoreSketch`.

    ``confusion[i, j]`` counts rows with true label ``labels[i]`` predicted as
    ``labels[j]``; ``labels`` are sorted strings. Build with :meth:`from_arrays`
    or :meth:`empty`, combine with :meth:`merge`, evaluate with :meth:`metrics`.
    """

    labels: tuple[str, ...]
    confusion: IntArray
    scores: BinaryScoreSketch | None = None

    format: ClassVar[str] = "driftline.classification_sketch"

    @classmethod
    def from_arrays(
        cls,
        y_true: Any,
        y_pred: Any,
        scores: Any = None,
        positive_label: object = None,
        *,
        labels: Collection[object] = (),
        score_bins: int = DEFAULT_SCORE_BINS,
        score_range: tuple[float, float] = (0.0, 1.0),
        calibration_bins: int = DEFAULT_CALIBRATION_BINS,
    ) -> ClassificationSketch:
        """Return the sketch of rows with true labels ``y_true`` and predictions ``y_pred``.

        ``scores`` (optional, finite) are the predicted probabilities (or any
        increasing score, with ``score_range``) of ``positive_label``. Without
        ``positive_label``, labels within {0, 1}, {-1, 1} or {false, true} take
        1 (true) as positive, as scikit-learn does; other labels need it.
        ``labels`` declares labels that count even when absent from the rows
        (scikit-learn's ``labels=``). Missing labels and non-finite scores raise
        :class:`~detectors.errors.InvalidParameterError`: drop those rows first.
        """
        true_codes, true_labels = label_codes(y_true, "y_true")
        pred_codes, pred_labels = label_codes(y_pred, "y_pred")
        same_length("y_pred", true_codes.size, pred_codes)
        declared = [canonical_label(label) for label in labels]
        names = tuple(sorted(set(true_labels) | set(pred_labels) | set(declared)))
        index = {name: i for i, name in enumerate(names)}
        true_index = np.array([index[n] for n in true_labels], dtype=np.int64)[true_codes]
        pred_index = np.array([index[n] for n in pred_labels], dtype=np.int64)[pred_codes]
        k = len(names)
        confusion = np.bincount(true_index * k + pred_index, minlength=k * k).reshape(k, k)
        score_sketch = None
        if scores is not None:
            values = finite_floats(scores, "scores")
            same_length("scores", true_codes.size, values)
            positive = _positive_label(positive_label, names)
            positive_code = index.get(positive, -1)
            score_sketch = BinaryScoreSketch.from_scores(
                values,
                true_index == positive_code,
                positive,
                bins=score_bins,
                score_range=score_range,
                calibration_bins=calibration_bins,
            )
        elif positive_label is not None:
            raise InvalidParameterError("positive_label", "given only with scores", positive_label)
        return cls(labels=names, confusion=confusion.astype(np.int64), scores=score_sketch)

    @classmethod
    def empty(
        cls,
        labels: Collection[object] = (),
        *,
        positive_label: object = None,
        score_bins: int = DEFAULT_SCORE_BINS,
        score_range: tuple[float, float] = (0.0, 1.0),
        calibration_bins: int = DEFAULT_CALIBRATION_BINS,
    ) -> ClassificationSketch:
        """Return the sketch of zero rows: with a score part when ``positive_label`` is given."""
        names = tuple(sorted({canonical_label(label) for label in labels}))
        score_sketch = None
        if positive_label is not None:
            score_sketch = BinaryScoreSketch.empty(
                canonical_label(positive_label),
                bins=score_bins,
                score_range=score_range,
                calibration_bins=calibration_bins,
            )
        k = len(names)
        return cls(labels=names, confusion=np.zeros((k, k), dtype=np.int64), scores=score_sketch)

    @property
    def rows(self) -> int:
        """Number of rows summarised."""
        return int(self.confusion.sum())

    def merge(self, other: ClassificationSketch) -> ClassificationSketch:
        """Return the sketch of the union of both sets of rows.

        Score parts must have the same configuration; a sketch without one merges
        with a scored sketch only when it holds no rows (otherwise some rows
        would be missing from the score metrics).
        """
        names = tuple(sorted(set(self.labels) | set(other.labels)))
        confusion = _reindex(self, names) + _reindex(other, names)
        if self.scores is not None and other.scores is not None:
            scores: BinaryScoreSketch | None = self.scores.merge(other.scores)
        elif self.scores is None and other.scores is None:
            scores = None
        else:
            unscored = self if self.scores is None else other
            if unscored.rows:
                raise IncompatibleSketchError(
                    "cannot merge a sketch with scores and a sketch of rows without scores"
                )
            scores = self.scores or other.scores
        return ClassificationSketch(labels=names, confusion=confusion, scores=scores)

    def metrics(self, zero_division: float = 0.0) -> ClassificationMetrics:
        """Return accuracy, per-label and macro precision/recall/F1 and the score metrics.

        ``zero_division`` is the value of a precision, recall or F1 whose
        denominator is zero: 0.0 (default), 1.0 or NaN, as in scikit-learn.
        """
        if not (math.isnan(zero_division) or zero_division in (0.0, 1.0)):
            raise InvalidParameterError("zero_division", "0.0, 1.0 or NaN", zero_division)
        tp = np.diag(self.confusion).astype(np.float64)
        true = self.confusion.sum(axis=1)
        pred = self.confusion.sum(axis=0)
        precision = _divide(tp, pred, zero_division)
        recall = _divide(tp, true, zero_division)
        f1 = _divide(2 * tp, true + pred, zero_division)
        classes = tuple(
            ClassMetrics(
                label=label,
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(true[i]),
                predicted=int(pred[i]),
            )
            for i, label in enumerate(self.labels)
        )
        n = self.rows
        score = self.scores if self.scores is not None else _NO_SCORES
        return ClassificationMetrics(
            rows=n,
            accuracy=float(tp.sum()) / n if n else math.nan,
            classes=classes,
            macro_precision=_nanmean(precision),
            macro_recall=_nanmean(recall),
            macro_f1=_nanmean(f1),
            zero_division=zero_division,
            positive_label=None if self.scores is None else self.scores.positive_label,
            **score._metric_fields(),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ClassificationSketch):
            return NotImplemented
        return (
            self.labels == other.labels
            and np.array_equal(self.confusion, other.confusion)
            and self.scores == other.scores
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict."""
        return {
            "format": self.format,
            "version": CLASSIFICATION_FORMAT_VERSION,
            "labels": list(self.labels),
            "confusion": self.confusion.tolist(),
            "scores": None if self.scores is None else self.scores.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationSketch:
        """Rebuild a sketch from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, CLASSIFICATION_FORMAT_VERSION)
        labels = tuple(str(label) for label in data["labels"])
        k = len(labels)
        confusion = np.asarray(data["confusion"], dtype=np.int64).reshape(-1)
        if confusion.size != k * k:
            raise IncompatibleSketchError(
                f"confusion has {confusion.size} cells; {k} labels need {k * k}"
            )
        scores = None if data["scores"] is None else BinaryScoreSketch.from_dict(data["scores"])
        return cls(labels=labels, confusion=confusion.reshape(k, k), scores=scores)


def score_bin(scores: FloatArray, bins: int, lo: float, hi: float) -> IntArray:
    """Return each score's histogram bin: ``floor(bins (s - lo) / (hi - lo))`` clipped to the ends.

    Non-decreasing in the score, which is what the AUC and AP bounds need.

    >>> score_bin(np.array([-1.0, 0.0, 0.0999, 0.1, 0.5, 1.0, 2.0]), 10, 0.0, 1.0).tolist()
    [0, 0, 0, 1, 5, 9, 9]
    """
    position = np.floor((scores - lo) / (hi - lo) * bins)
    return np.clip(position, 0, bins - 1).astype(np.int64)


def calibration_bin(scores: FloatArray, bins: int) -> IntArray:
    """Return each score's calibration bin: ``[0, 1/M], (1/M, 2/M], ..., ((M-1)/M, 1]``.

    The edges and the ``searchsorted`` rule are those of scikit-learn's
    ``calibration_curve(strategy="uniform")``; scores outside ``[0, 1]`` go to
    the end bins.

    >>> calibration_bin(np.array([0.0, 0.1, 0.1000001, 0.95, 1.0]), 10).tolist()
    [0, 0, 1, 9, 9]
    """
    inner = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    return np.searchsorted(inner, scores, side="left").astype(np.int64)


def _positive_label(given: object, names: tuple[str, ...]) -> str:
    if given is not None:
        return canonical_label(given)
    present = frozenset(names)
    for allowed, positive in _DEFAULT_POSITIVES.items():
        if present <= allowed:
            return positive
    raise InvalidParameterError(
        "positive_label",
        "given when the labels are not within {0, 1}, {-1, 1} or {false, true}",
        None,
    )


def _check_config(bins: int, score_range: tuple[float, float], calibration_bins: int) -> None:
    if not 1 <= bins <= MAX_BINS:
        raise InvalidParameterError("score_bins", f"between 1 and {MAX_BINS}", bins)
    if not 1 <= calibration_bins <= MAX_BINS:
        raise InvalidParameterError(
            "calibration_bins", f"between 1 and {MAX_BINS}", calibration_bins
        )
    lo, hi = score_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InvalidParameterError(
            "score_range", "(low, high) with finite low < high", score_range
        )


def _reindex(sketch: ClassificationSketch, names: tuple[str, ...]) -> IntArray:
    if sketch.labels == names:
        return sketch.confusion
    where = np.array([names.index(label) for label in sketch.labels], dtype=np.int64)
    out = np.zeros((len(names), len(names)), dtype=np.int64)
    out[np.ix_(where, where)] = sketch.confusion
    return out


def _divide(numerator: FloatArray, denominator: IntArray, zero_division: float) -> FloatArray:
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, zero_division, numerator / safe)


def _nanmean(values: FloatArray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else math.nan


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


#: Stands in for a missing score part: every score metric NaN, no scored rows.
_NO_SCORES = BinaryScoreSketch.empty("", bins=1, calibration_bins=1)

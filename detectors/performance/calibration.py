r"""Isotonic calibration of binary scores, and the check that decides whether to apply it.

:class:`IsotonicCalibrator` maps a score ``s`` to a probability ``g(s)``: the
non-decreasing function that minimises ``sum_i (y_i - g(s_i))^2`` over the
reference rows (``y_i`` 1 for positives, 0 for negatives), evaluated between
the reference's distinct scores by linear interpolation and clipped at both
ends. It is scikit-learn's ``IsotonicRegression(increasing=True,
out_of_bounds="clip")`` -- what NannyML's CBPE calibrates with -- written here
in numpy because ``detectors`` may not import scikit-learn:

1. rows are grouped by distinct score ``x_j``, with weight ``w_j`` (rows) and
   mean label ``ybar_j`` (the positive share at that score);
2. :func:`isotonic_regression` (pool adjacent violators, PAV) returns the
   weighted least-squares non-decreasing fit ``f_j`` of the ``ybar_j``: scan
   left to right keeping blocks of ``(sum w y, sum w)``; whenever a block's
   mean is at least the next one's, pool the two (and repeat backwards). Every
   block's fitted value is its weighted mean, which is the unique minimiser;
3. inside a run of equal ``f_j`` only the first and last knot are kept (the
   interpolation is the same), as scikit-learn keeps them;
4. ``g(s) = interp(clip(s, x_1, x_m), x, f)``.

``tests/detectors/test_cbpe.py`` checks knots and predictions against
scikit-learn (absolute 1e-12). One difference: scikit-learn merges scores
closer than ``1e-15`` into one knot; here only equal scores are merged.

:func:`calibration_check` is NannyML's ``needs_calibration``: calibration is
applied only when it lowers the expected calibration error (ECE) of held-out
rows. Steps, as NannyML 0.13 does them:

* one class only, or reference ROC AUC above 0.999: not needed (nothing to
  learn, or the scores already separate the classes; isotonic steps would only
  add noise);
* otherwise ``splits`` (10) stratified random splits, each holding out a share
  ``test_share`` (10%) of every class; a calibrator fitted on the rest
  calibrates the held-out rows. The held-out rows of all splits are pooled;
* ECE of the pooled rows, before and after calibration, on equal-count bins of
  the rows sorted by the evaluated probability: with ``n`` rows and ``k``
  bins (10; ``n // 2`` when ``n <= 2k``), bin width ``w = n // k``, edges
  ``0, w, 2w, ...`` with the last edge moved to ``n``, and
  ``ECE = sum_b (n_b / n) |mean(prob_b) - mean(y_b)|``;
* calibration is needed when ``ECE_before > ECE_after``.

The splits are drawn with numpy's ``default_rng(seed)``, not scikit-learn's
``StratifiedShuffleSplit``, so the held-out rows (and the ECE values) differ
from NannyML's; the test is the same. Scores outside ``[0, 1]`` are not
probabilities: :class:`~detectors.performance.cbpe.CBPE` calibrates them
without asking.

What the check can and cannot tell. Distorted scores are caught reliably (a
squared or cubed probability: ECE about 0.1 before, under 0.01 after). For
scores that are already calibrated both ECEs are sampling noise (about 0.005
to 0.01 at 20,000 reference rows) and the decision is close to a coin toss,
leaning to "calibrate": 16 of 20 seeded 20,000-row references here, 17 of 20
with NannyML's own ``needs_calibration`` on the same data. That costs little:
isotonic calibration of calibrated scores stays close to the identity, and
the estimates then carry the calibrator's sampling error on the reference
(about +-0.01 in the mean probability of a region of 5,000 reference rows,
shrinking as the square root of the rows). Pass ``calibration="none"`` to
:meth:`~detectors.performance.cbpe.CBPE.fit` when the scores are known to be
calibrated.

>>> calibrator = IsotonicCalibrator.fit([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [0, 1, 0, 1, 1, 1])
>>> calibrator.knots.tolist(), calibrator.values.tolist()
([0.1, 0.2, 0.3, 0.4, 0.6], [0.0, 0.5, 0.5, 1.0, 1.0])
>>> calibrator.predict(np.array([0.0, 0.2, 0.25, 0.4, 0.9])).tolist()
[0.0, 0.5, 0.5, 1.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.errors import InvalidParameterError

#: Reference ROC AUC above which NannyML (and this check) never calibrates.
SEPARABLE_AUC = 0.999


def isotonic_regression(values: FloatArray, weights: FloatArray | None = None) -> FloatArray:
    """Return the weighted least-squares non-decreasing fit of ``values`` (pool adjacent violators).

    Minimises ``sum_j w_j (values_j - f_j)^2`` subject to ``f_1 <= ... <= f_m``.
    O(m): each value is pooled into a block at most once.

    >>> isotonic_regression(np.array([1.0, 3.0, 2.0, 4.0])).tolist()
    [1.0, 2.5, 2.5, 4.0]
    >>> isotonic_regression(np.array([1.0, 3.0, 2.0]), np.array([1.0, 1.0, 3.0])).tolist()
    [1.0, 2.25, 2.25]
    """
    y = np.asarray(values, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    # Blocks as parallel lists of (sum of w * y, sum of w, number of values): a
    # Python loop, since numpy has no PAV; m is the number of distinct scores.
    sums: list[float] = []
    totals: list[float] = []
    sizes: list[int] = []
    for value, weight in zip((y * w).tolist(), w.tolist(), strict=True):
        block_sum, block_weight, size = value, weight, 1
        # Pool while the previous block's mean is not below this one's (cross-multiplied).
        while sums and sums[-1] * block_weight >= block_sum * totals[-1]:
            block_sum += sums.pop()
            block_weight += totals.pop()
            size += sizes.pop()
        sums.append(block_sum)
        totals.append(block_weight)
        sizes.append(size)
    means = np.asarray(sums) / np.asarray(totals)
    return np.repeat(means, sizes).astype(np.float64)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IsotonicCalibrator:
    """A fitted isotonic calibration map from scores to probabilities.

    ``g(s) = interp(clip(s, knots[0], knots[-1]), knots, values)``: ``knots``
    are increasing reference scores, ``values`` the non-decreasing
    probabilities there. Build with :meth:`fit`.
    """

    knots: FloatArray
    values: FloatArray

    @classmethod
    def fit(cls, scores: Any, positive: Any) -> IsotonicCalibrator:
        """Fit on reference ``scores`` and ``positive`` (1/True for positives, 0/False otherwise).

        Both must be non-empty, of equal length; scores finite.
        """
        x = np.asarray(scores, dtype=np.float64)
        y = np.asarray(positive, dtype=np.float64)
        if x.ndim != 1 or x.size == 0 or x.shape != y.shape:
            raise InvalidParameterError(
                "scores", "a non-empty 1-d array as long as positive", x.shape
            )
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
        starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
        weights = np.diff(np.append(starts, x.size)).astype(np.float64)
        means = np.add.reduceat(y, starts) / weights
        fitted = isotonic_regression(means, weights)
        knots = x[starts]
        keep = np.ones(fitted.size, dtype=bool)
        # Interior knots inside a run of equal values change nothing in the interpolation.
        keep[1:-1] = (fitted[1:-1] != fitted[:-2]) | (fitted[1:-1] != fitted[2:])
        return cls(knots=knots[keep], values=fitted[keep])

    def predict(self, scores: FloatArray) -> FloatArray:
        """Return the calibrated probabilities of ``scores`` (outside the knots: the end values)."""
        if self.knots.size == 1:
            return np.full(scores.shape, self.values[0], dtype=np.float64)
        return np.interp(scores, self.knots, self.values).astype(np.float64)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IsotonicCalibrator):
            return NotImplemented
        return np.array_equal(self.knots, other.knots) and np.array_equal(self.values, other.values)

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (floats round-trip exactly through JSON)."""
        return {"knots": self.knots.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IsotonicCalibrator:
        """Rebuild a calibrator from :meth:`to_dict` output."""
        knots = np.asarray(data["knots"], dtype=np.float64)
        values = np.asarray(data["values"], dtype=np.float64)
        if knots.ndim != 1 or knots.size == 0 or knots.shape != values.shape:
            raise InvalidParameterError("calibrator", "as many knots as values, at least one", data)
        return cls(knots=knots, values=values)


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationCheck:
    """Whether the reference's scores are calibrated before estimating, and why.

    ``ece_raw`` / ``ece_calibrated`` are the pooled held-out ECEs of the check
    (NaN when it did not run); ``roc_auc`` is the reference ROC AUC of the raw
    scores (NaN when not computed).
    """

    needed: bool
    reason: str
    ece_raw: float = math.nan
    ece_calibrated: float = math.nan
    roc_auc: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN as None)."""
        return {
            "needed": self.needed,
            "reason": self.reason,
            "ece_raw": _json_float(self.ece_raw),
            "ece_calibrated": _json_float(self.ece_calibrated),
            "roc_auc": _json_float(self.roc_auc),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationCheck:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            needed=bool(data["needed"]),
            reason=str(data["reason"]),
            ece_raw=_float(data["ece_raw"]),
            ece_calibrated=_float(data["ece_calibrated"]),
            roc_auc=_float(data["roc_auc"]),
        )


def calibration_check(
    scores: FloatArray,
    positive: np.ndarray,
    *,
    splits: int = 10,
    test_share: float = 0.1,
    bins: int = 10,
    seed: int = 42,
) -> CalibrationCheck:
    """Return whether isotonic calibration lowers the held-out ECE of ``scores`` (see module).

    ``positive`` is a boolean array, ``scores`` finite probabilities in ``[0, 1]``.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(4000)
    >>> calibration_check(p, rng.random(4000) < p).needed  # already calibrated
    False
    >>> calibration_check(p**3, rng.random(4000) < p).needed  # distorted: calibrate
    True
    """
    if splits < 1:
        raise InvalidParameterError("splits", "at least 1", splits)
    if not 0.0 < test_share < 1.0:
        raise InvalidParameterError("test_share", "strictly between 0 and 1", test_share)
    if bins < 2:
        raise InvalidParameterError("bins", "at least 2", bins)
    y = np.asarray(positive, dtype=bool)
    n_pos = int(y.sum())
    if n_pos in (0, y.size):
        return CalibrationCheck(needed=False, reason="the reference has one class only")
    auc = _roc_auc(scores, y)
    if auc > SEPARABLE_AUC:
        return CalibrationCheck(
            needed=False, reason=f"reference ROC AUC above {SEPARABLE_AUC}", roc_auc=auc
        )
    rng = np.random.default_rng(seed)
    classes = [np.flatnonzero(y), np.flatnonzero(~y)]
    held_out: list[IntArray] = []
    calibrated: list[FloatArray] = []
    for _ in range(splits):
        test_mask = np.zeros(y.size, dtype=bool)
        for members in classes:
            take = min(max(1, round(test_share * members.size)), members.size - 1)
            test_mask[rng.choice(members, size=take, replace=False)] = True
        calibrator = IsotonicCalibrator.fit(scores[~test_mask], y[~test_mask])
        test = np.flatnonzero(test_mask)
        held_out.append(test)
        calibrated.append(calibrator.predict(scores[test]))
    rows = np.concatenate(held_out) if held_out else np.zeros(0, dtype=np.int64)
    if rows.size < 4:
        return CalibrationCheck(
            needed=False, reason="too few reference rows for the check", roc_auc=auc
        )
    truth = y[rows].astype(np.float64)
    before = expected_calibration_error(scores[rows], truth, bins)
    after = expected_calibration_error(np.concatenate(calibrated), truth, bins)
    needed = before > after
    reason = (
        "calibration lowers the held-out ECE"
        if needed
        else "calibration does not lower the held-out ECE"
    )
    return CalibrationCheck(
        needed=needed, reason=reason, ece_raw=before, ece_calibrated=after, roc_auc=auc
    )


def expected_calibration_error(probabilities: FloatArray, truth: FloatArray, bins: int) -> float:
    """Return the ECE on NannyML's equal-count bins of the rows sorted by probability.

    ``k = bins`` (``n // 2`` when ``n <= 2k``), width ``w = n // k``, edges
    ``0, w, 2w, ...`` with the last moved to ``n`` (so the remainder joins the
    last bin); ``ECE = sum_b (n_b / n) |mean(p_b) - mean(y_b)|``.

    >>> p = np.array([0.2, 0.2, 0.8, 0.8])
    >>> ece = expected_calibration_error(p, np.array([0.0, 1.0, 1.0, 1.0]), 2)
    >>> round(ece, 12)  # |0.2 - 0.5| / 2 + |0.8 - 1| / 2
    0.25
    """
    n = probabilities.size
    if n <= 2 * bins:
        bins = n // 2
    order = np.argsort(probabilities, kind="stable")
    p, y = probabilities[order], truth[order]
    width = n // bins
    edges = np.arange(0, n + 1, width)
    edges[-1] = n
    starts = edges[:-1]
    sizes = np.diff(edges).astype(np.float64)
    gaps = np.abs(np.add.reduceat(p, starts) - np.add.reduceat(y, starts)) / sizes
    return float(np.sum(sizes / n * gaps))


def _roc_auc(scores: FloatArray, positive: np.ndarray) -> float:
    """Mann-Whitney ROC AUC (ties count 1/2), as ``sklearn.metrics.roc_auc_score``."""
    # Imported here: scipy.stats takes ~0.6 s to import, and only a labelled check needs it.
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)

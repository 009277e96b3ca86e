"""The multivariate-method extension point: base class, result type, :data:`MULTIVARIATE_METHODS`.

A multivariate method compares a reference and a current set of rows as a
whole, so it sees what per-feature tests cannot: a change in how features move
together while each one's distribution stays put. Rows come as two 2-d float
arrays (one column per feature, NaN for a missing value) or as two
:class:`~detectors.sample.RowSample` objects, whose categorical codes are
one-hot encoded first (:meth:`~detectors.sample.RowSample.matrix`).

Adding a method is one module in this package that defines a subclass of
:class:`MultivariateMethod` decorated with ``@MULTIVARIATE_METHODS.register``,
its import in ``detectors/multivariate/__init__.py``, and its tests (see
:mod:`detectors`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from detectors._arrays import FloatArray
from detectors.errors import (
    IncompatibleSketchError,
    InvalidParameterError,
    check_int,
    check_real,
)
from detectors.registry import Registry
from detectors.sample import DEFAULT_ONE_HOT_LEVELS, RowSample

#: What a method compares: rows as a 2-d float array, or a row sample.
Rows = RowSample | npt.ArrayLike


@dataclass(frozen=True, slots=True, kw_only=True)
class MultivariateResult:
    """What one multivariate method found.

    For hypothesis tests (``p_value`` set) ``drift`` is ``p_value <= alpha``
    and ``threshold`` is ``alpha``; for the others (``p_value`` is ``None``)
    ``drift`` is ``statistic > threshold``. ``n_reference`` and ``n_current``
    are the rows compared, ``n_features`` the columns after one-hot encoding.
    Without enough rows on either side (or without columns) the statistic and
    p-value are NaN and ``drift`` is false. Subclasses add the parameters the
    method used.
    """

    method: str
    statistic: float
    threshold: float
    p_value: float | None
    drift: bool
    n_reference: int
    n_current: int
    n_features: int
    alpha: float
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Return every field as a JSON-serialisable dict (NaN and infinities as ``None``)."""
        data: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            data[item.name] = value
        return data


class MissingSampleError(ValueError):
    """A multivariate comparison was asked of a profile or sketch that keeps no row sample."""

    def __init__(self, side: str, fix: str) -> None:
        self.side = side
        super().__init__(f"the {side} has no row sample for the multivariate methods; {fix}")


class MultivariateMethod(ABC):
    """Base class of every multivariate drift method.

    Constructor arguments are stored unchanged as public attributes and
    validated at construction; ``alpha`` is the false-alarm rate the method's
    decision targets and ``seed`` makes every random choice (splits,
    permutations, bootstrap draws) reproducible: the same inputs and seed
    always give the same result.
    """

    #: Registry name used in config and output.
    name: ClassVar[str]
    #: Human name for tables.
    title: ClassVar[str]
    #: True for hypothesis tests (decide on a p-value), False for threshold methods.
    is_test: ClassVar[bool]
    #: Fewest reference rows needed; with fewer the result is undefined (NaN, no drift).
    min_reference_rows: ClassVar[int] = 2
    #: Fewest current rows needed; with fewer the result is undefined (NaN, no drift).
    min_current_rows: ClassVar[int] = 2

    def __init__(self, *, alpha: float = 0.05, seed: int = 0) -> None:
        self.alpha = check_real("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
        self.seed = check_int("seed", seed, 0)

    def compare(
        self, reference: Rows, current: Rows, *, max_levels: int = DEFAULT_ONE_HOT_LEVELS
    ) -> MultivariateResult:
        """Compare the rows of ``current`` with those of ``reference``; return the result.

        Both are 2-d arrays with the same columns, or both row samples of the
        same features (``max_levels`` then sets their one-hot encoding).
        Infinite values count as missing.
        """
        ref, cur = as_matrices(reference, current, max_levels)
        n_ref, n_cur = ref.shape[0], cur.shape[0]
        enough = n_ref >= self.min_reference_rows and n_cur >= self.min_current_rows
        if not enough or ref.shape[1] == 0:
            return self._undefined(
                self._common(
                    statistic=math.nan,
                    threshold=self.alpha if self.is_test else math.nan,
                    p_value=math.nan if self.is_test else None,
                    n_reference=n_ref,
                    n_current=n_cur,
                    n_features=ref.shape[1],
                )
            )
        return self._compare(ref, cur, np.random.default_rng(self.seed))

    @abstractmethod
    def _compare(
        self, reference: FloatArray, current: FloatArray, rng: np.random.Generator
    ) -> MultivariateResult:
        """Compare two 2-d arrays with enough rows (NaN still marks a missing value)."""

    @abstractmethod
    def _undefined(self, common: dict[str, Any]) -> MultivariateResult:
        """Return this method's result without enough data: ``common`` fields, its parameters.

        Values the method would have computed from the data are NaN (0 for counts).
        """

    def _common(
        self,
        *,
        statistic: float,
        threshold: float,
        p_value: float | None,
        n_reference: int,
        n_current: int,
        n_features: int,
    ) -> dict[str, Any]:
        """Return the result fields every method fills alike, the decision included."""
        return {
            "method": self.name,
            "statistic": statistic,
            "threshold": threshold,
            "p_value": p_value,
            "drift": self._drift(statistic, threshold, p_value),
            "n_reference": n_reference,
            "n_current": n_current,
            "n_features": n_features,
            "alpha": self.alpha,
            "seed": self.seed,
        }

    def _drift(self, statistic: float, threshold: float, p_value: float | None) -> bool:
        """The decision rule of :class:`MultivariateResult`."""
        if p_value is not None:
            return bool(p_value <= self.alpha)
        return bool(statistic > threshold)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({params})"


def as_matrices(
    reference: Rows, current: Rows, max_levels: int = DEFAULT_ONE_HOT_LEVELS
) -> tuple[FloatArray, FloatArray]:
    """Return both sides as 2-d float arrays with the same columns, infinities as NaN."""
    if isinstance(reference, RowSample) and isinstance(current, RowSample):
        if (reference.columns, reference.levels) != (current.columns, current.levels):
            raise IncompatibleSketchError(
                "the reference and current row samples are of different features"
            )
        pair = reference.matrix(max_levels), current.matrix(max_levels)
    elif isinstance(reference, RowSample) or isinstance(current, RowSample):
        raise InvalidParameterError(
            "reference and current", "both row samples or both arrays", "one of each"
        )
    else:
        pair = np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64)
    for side, matrix in zip(("reference", "current"), pair, strict=True):
        if matrix.ndim != 2:
            raise InvalidParameterError(side, "a 2-d array (rows x features)", f"{matrix.ndim}-d")
    ref, cur = pair
    if ref.shape[1] != cur.shape[1]:
        raise InvalidParameterError(
            "current", f"{ref.shape[1]} columns like the reference", cur.shape[1]
        )
    return _finite_or_nan(ref), _finite_or_nan(cur)


def _finite_or_nan(matrix: FloatArray) -> FloatArray:
    return np.where(np.isfinite(matrix), matrix, np.nan)


def standardizer(rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Return per-column ``(mean, scale)`` of ``rows``, ignoring NaN.

    A column without values gets mean 0; a constant (or empty) column gets
    scale 1, so its deviations elsewhere stay visible in their own units.
    """
    present = ~np.isnan(rows)
    counts = present.sum(axis=0)
    filled = np.where(present, rows, 0.0)
    mean = np.divide(filled.sum(axis=0), counts, out=np.zeros(rows.shape[1]), where=counts > 0)
    centred = np.where(present, rows - mean, 0.0)
    variance = np.divide(
        (centred**2).sum(axis=0), counts, out=np.zeros(rows.shape[1]), where=counts > 0
    )
    scale = np.sqrt(variance)
    return mean, np.where(scale > 1e-12 * np.maximum(np.abs(mean), 1.0), scale, 1.0)


def standardize(rows: FloatArray, mean: FloatArray, scale: FloatArray) -> FloatArray:
    """Return ``(rows - mean) / scale`` with missing values at 0 (imputed with ``mean``)."""
    return np.nan_to_num((rows - mean) / scale, nan=0.0)


def auc(positive: npt.ArrayLike, negative: npt.ArrayLike) -> float:
    """Return the area under the ROC curve of scores: P(positive > negative) + P(tie) / 2.

    Computed from Mann-Whitney ranks, so it equals ``U / (n1 * n0)`` of
    :func:`scipy.stats.mannwhitneyu` on ``(positive, negative)``. NaN when a side is empty.

    >>> auc([0.9, 0.8, 0.4], [0.5, 0.1])
    0.8333333333333334
    """
    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    scores = np.concatenate((pos, neg))
    labels = np.concatenate((np.ones(pos.size, bool), np.zeros(neg.size, bool)))
    return float(rank_auc(scores[:, None], labels[:, None])[0])


def rank_auc(scores: FloatArray, labels: npt.NDArray[np.bool_]) -> FloatArray:
    """Return the AUC of every column of ``scores`` (rows x runs) given that column's ``labels``.

    Mid-ranks count ties as half; a column whose labels are all alike gives NaN.
    """
    # Imported here: scipy.stats takes ~0.6 s to import, and only the opt-in methods rank.
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    n_pos = labels.sum(axis=0).astype(np.float64)
    n_neg = labels.shape[0] - n_pos
    u = (ranks * labels).sum(axis=0) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(n_pos * n_neg > 0, u / (n_pos * n_neg), np.nan))


def permutation_p_value(observed: float, permuted: FloatArray) -> float:
    """Return ``(1 + #{permuted >= observed}) / (1 + len(permuted))``, never 0 (NaN-safe)."""
    valid = permuted[~np.isnan(permuted)]
    return float((1 + np.count_nonzero(valid >= observed)) / (1 + valid.size))


#: Every multivariate method by the name used in config files and output (``"mmd"``, ...).
MULTIVARIATE_METHODS: Registry[MultivariateMethod] = Registry(
    MultivariateMethod, kind="multivariate method"
)

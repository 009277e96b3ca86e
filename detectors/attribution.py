r"""Attribution drift: has the model's reliance on its features changed?

Feature drift asks whether the *inputs* moved; attribution drift asks whether
the *reasons* for the model's outputs moved. It is computed from per-row SHAP
values ``phi[i, j]`` (row ``i``, feature ``j``): the serving side may send
them in the prediction record's ``explanations`` field, or
``monitor.analyses.explain`` computes them from the model. A feature's importance is
its mean absolute SHAP value ``I_j = sum_i |phi[i, j]| / n_j`` over the
``n_j`` rows that have a value.

:class:`AttributionSummary` is the bounded, mergeable summary of a window of
such rows. Per feature it keeps the count ``n_j`` of rows with a finite value,
``A_j = sum |phi|``, ``S_j = sum phi`` and ``Q_j = sum |phi|^2`` (the sum of
squares, for a standard error). Its size depends on the number of features
only; merging two summaries adds them (counts exactly, float sums up to the
rounding of the addition order, relative 1e-12). Features are kept sorted by
name, so merging is commutative and a summary's form does not depend on column
order. Missing values (NaN, None) and infinities are not counted, as the record
decoder drops them: an explanation may cover only some features.

:func:`attribution_drift` compares a reference summary (usually the SHAP
values of the training or validation data) with a window's:

* per feature the mean ``|SHAP|`` on both sides and the **relative change**
  ``r_j = (I_cur - I_ref) / I_ref`` (``+inf`` when ``I_ref = 0 < I_cur``, 0
  when both are 0);
* optionally a **Welch-type z test** of ``I_cur = I_ref``. With
  ``s^2 = (Q - n I^2) / (n - 1)`` the sample variance of ``|phi|`` on a side,
  ``z = (I_cur - I_ref) / sqrt(s_ref^2 / n_ref + s_cur^2 / n_cur)`` and the
  two-sided p-value is ``erfc(|z| / sqrt(2))``: Welch's unequal-variance
  statistic with the normal approximation, which holds by the central limit
  theorem once both sides have ``min_samples`` (default 30) rows. Rows are
  treated as independent. When SHAP values come from a sampled explainer their
  estimation noise is independent across rows and part of ``s^2``: the test
  stays valid, with less power. p-values are corrected across features like
  feature drift (Benjamini-Hochberg by default, :mod:`detectors.decisions`);
* the **decision**: a feature's attribution drifts when ``|r_j| >= threshold``
  (default 0.25: its importance moved by a quarter or more) *and*, when
  ``alpha`` is set, the corrected test rejects. The relative change says the
  change matters, the test says it is not noise; with ``alpha=None`` only the
  relative change decides (use that when the reference has few rows).
  Features the model hardly uses -- a share of importance (below) under
  ``min_share``, default 0.01, on both sides -- are reported as
  ``negligible`` and neither tested nor decided: their tiny mean ``|SHAP|``
  makes relative changes large and meaningless (in a tree ensemble a noise
  feature's SHAP values move whenever rows reach other leaves because
  *another* feature drifted). A feature that becomes important (a share of at
  least ``min_share`` in the window) is decided;
* the **share-of-importance distance**: the importances normalised to sum to 1
  on each side, ``p_j = I_j / sum_k I_k``, compared by their total variation
  distance ``TV = (1/2) sum_j |p_ref_j - p_cur_j|`` in [0, 1], the share of the
  model's attribution that moved between features. It is scale-free: a window
  whose outputs are simply larger (every ``I_j`` doubled) has ``TV = 0``.
  ``TV >= share_threshold`` (default 0.1) is a drift of its own. It is a
  distance without a test: on small windows sampling noise alone makes it
  positive.

:func:`drift_impact_ranking` orders features by how much their input drift
should matter to the model: ``impact = drift statistic x reference
importance`` (importance normalised to sum to 1). See its docstring for which
statistic to pass.

>>> import pandas as pd
>>> ref = AttributionSummary.from_values(
...     pd.DataFrame({"income": [0.25, -0.25, 0.25, -0.25], "age": [0.5, -0.5, 1.0, -1.0]})
... )
>>> ref.features, ref.mean_abs()
(('age', 'income'), {'age': 0.75, 'income': 0.25})
>>> cur = AttributionSummary.from_values(
...     pd.DataFrame({"age": [0.25, -0.25, 0.25, -0.25], "income": [1.0, -1.0, 0.5, -0.5]})
... )
>>> report = attribution_drift(ref, cur, alpha=None, min_samples=1)
>>> [(f.name, round(f.relative_change, 4), f.drift) for f in report.features]
[('age', -0.6667, True), ('income', 2.0, True)]
>>> report.share_distance, report.drift
(0.5, True)
>>> ranking = drift_impact_ranking({"age": 0.2, "income": 0.4}, ref.importance())
>>> [(d.name, round(d.impact, 4)) for d in ranking]
[('age', 0.15), ('income', 0.1)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from detectors._arrays import FloatArray, IntArray
from detectors.decisions import Correction, corrected_thresholds
from detectors.errors import InvalidParameterError, check_version

if TYPE_CHECKING:
    from detectors.drift import DriftReport

__all__ = [
    "ATTRIBUTION_FORMAT_VERSION",
    "AttributionDriftReport",
    "AttributionSummary",
    "DriftImpact",
    "FeatureAttributionDrift",
    "attribution_drift",
    "comparable_statistics",
    "drift_impact_ranking",
]

ATTRIBUTION_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AttributionSummary:
    """Per-feature sums of SHAP values over a set of rows; see the module docstring.

    ``features`` are sorted names; ``counts``, ``abs_sum`` (``sum |phi|``),
    ``total`` (``sum phi``) and ``abs_sq_sum`` (``sum phi^2``) are aligned
    with them. ``rows`` is the number of rows summarised, including rows
    without a value for some (or any) feature.
    """

    features: tuple[str, ...]
    counts: IntArray
    abs_sum: FloatArray
    total: FloatArray
    abs_sq_sum: FloatArray
    rows: int

    format: ClassVar[str] = "driftline.attribution_summary"

    def __post_init__(self) -> None:
        size = len(self.features)
        if list(self.features) != sorted(set(self.features)):
            raise InvalidParameterError("features", "distinct names in sorted order", self.features)
        for name in ("counts", "abs_sum", "total", "abs_sq_sum"):
            array = getattr(self, name)
            if array.shape != (size,):
                raise InvalidParameterError(name, f"of shape ({size},)", array.shape)
        if self.rows < (int(self.counts.max()) if size else 0):
            raise InvalidParameterError("rows", "at least every feature's count", self.rows)

    @classmethod
    def from_values(cls, values: Any, features: Sequence[str] | None = None) -> AttributionSummary:
        """Return the summary of per-row SHAP values (rows x features).

        ``values`` is a DataFrame whose columns are the feature names, or a 2-d
        array with the names in ``features``. Every column must be numeric
        (None is accepted as missing). NaN and infinite entries are not counted.
        """
        frame_columns: list[str]
        if isinstance(values, pd.DataFrame):
            frame_columns = [str(c) for c in values.columns]
            if features is not None and list(features) != frame_columns:
                raise InvalidParameterError("features", "the DataFrame's columns or None", features)
            raw: Any = values
        else:
            if features is None:
                raise InvalidParameterError("features", "the column names of an array", None)
            frame_columns = [str(f) for f in features]
            raw = values
        try:
            if isinstance(raw, pd.DataFrame):
                matrix = raw.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                matrix = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError) as error:
            raise InvalidParameterError("values", "numbers (SHAP values)", str(error)) from None
        if matrix.ndim != 2 or matrix.shape[1] != len(frame_columns):
            raise InvalidParameterError(
                "values", f"2-d with one column per feature ({len(frame_columns)})", matrix.shape
            )
        if len(set(frame_columns)) != len(frame_columns):
            raise InvalidParameterError("features", "distinct names", frame_columns)
        order = np.argsort(np.asarray(frame_columns, dtype=object), kind="stable")
        matrix = matrix[:, order]
        finite = np.isfinite(matrix)
        magnitude = np.where(finite, np.abs(matrix), 0.0)
        return cls(
            features=tuple(frame_columns[k] for k in order),
            counts=finite.sum(axis=0).astype(np.int64),
            abs_sum=magnitude.sum(axis=0),
            total=np.where(finite, matrix, 0.0).sum(axis=0),
            abs_sq_sum=np.square(magnitude).sum(axis=0),
            rows=int(matrix.shape[0]),
        )

    @classmethod
    def empty(cls, features: Iterable[str] = ()) -> AttributionSummary:
        """Return the summary of no rows over ``features``."""
        names = tuple(sorted(set(features)))
        zeros = np.zeros(len(names), dtype=np.float64)
        return cls(
            features=names,
            counts=np.zeros(len(names), dtype=np.int64),
            abs_sum=zeros,
            total=zeros.copy(),
            abs_sq_sum=zeros.copy(),
            rows=0,
        )

    def merge(self, other: AttributionSummary) -> AttributionSummary:
        """Return the summary of both sets of rows (the union of their features)."""
        names = tuple(sorted(set(self.features) | set(other.features)))
        counts = np.zeros(len(names), dtype=np.int64)
        sums = np.zeros((3, len(names)), dtype=np.float64)
        for part in (self, other):
            at = np.searchsorted(np.asarray(names, dtype=object), np.asarray(part.features, object))
            counts[at] += part.counts
            sums[:, at] += np.stack([part.abs_sum, part.total, part.abs_sq_sum])
        return AttributionSummary(
            features=names,
            counts=counts,
            abs_sum=sums[0].copy(),
            total=sums[1].copy(),
            abs_sq_sum=sums[2].copy(),
            rows=self.rows + other.rows,
        )

    def mean_abs(self) -> dict[str, float]:
        """Return each feature's mean ``|SHAP|`` (its importance; NaN without values)."""
        return dict(zip(self.features, _ratio(self.abs_sum, self.counts).tolist(), strict=True))

    def mean(self) -> dict[str, float]:
        """Return each feature's mean signed SHAP value (NaN without values)."""
        return dict(zip(self.features, _ratio(self.total, self.counts).tolist(), strict=True))

    def standard_error(self) -> dict[str, float]:
        """Return the standard error of each feature's mean ``|SHAP|`` (NaN below two values)."""
        errors = np.sqrt(self._variance_of_mean())
        return dict(zip(self.features, errors.tolist(), strict=True))

    def importance(self) -> dict[str, float]:
        """Return each feature's share of the total mean ``|SHAP|`` (sums to 1).

        Features without values count as 0. All shares are 0 when every mean
        ``|SHAP|`` is 0 (a constant model).
        """
        shares = _shares(self.abs_sum, self.counts)
        if shares is None:
            return dict.fromkeys(self.features, 0.0)
        return dict(zip(self.features, shares.tolist(), strict=True))

    def _variance_of_mean(self) -> FloatArray:
        """``s^2 / n`` per feature, ``s^2`` the sample variance of ``|phi|``; NaN below n = 2."""
        n = self.counts.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.abs_sum / n
            # Q - n mean^2 can cancel to a tiny negative number; a variance is never negative.
            spread = np.maximum(self.abs_sq_sum - n * mean * mean, 0.0)
            result: FloatArray = np.where(n >= 2, spread / (n - 1) / n, np.nan)
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AttributionSummary):
            return NotImplemented
        return (
            self.features == other.features
            and self.rows == other.rows
            and np.array_equal(self.counts, other.counts)
            and all(
                np.allclose(getattr(self, n), getattr(other, n), rtol=1e-12, atol=1e-12)
                for n in ("abs_sum", "total", "abs_sq_sum")
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict."""
        return {
            "format": self.format,
            "version": ATTRIBUTION_FORMAT_VERSION,
            "rows": self.rows,
            "features": list(self.features),
            "counts": self.counts.tolist(),
            "abs_sum": self.abs_sum.tolist(),
            "total": self.total.tolist(),
            "abs_sq_sum": self.abs_sq_sum.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributionSummary:
        """Rebuild a summary from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, ATTRIBUTION_FORMAT_VERSION)
        return cls(
            features=tuple(str(f) for f in data["features"]),
            counts=np.asarray(data["counts"], dtype=np.int64).reshape(-1),
            abs_sum=np.asarray(data["abs_sum"], dtype=np.float64).reshape(-1),
            total=np.asarray(data["total"], dtype=np.float64).reshape(-1),
            abs_sq_sum=np.asarray(data["abs_sq_sum"], dtype=np.float64).reshape(-1),
            rows=int(data["rows"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureAttributionDrift:
    """How one feature's attribution changed between the reference and a window.

    ``reference_mean_abs`` / ``current_mean_abs`` are the mean ``|SHAP|`` (the
    importance) on each side and ``relative_change`` their relative difference;
    ``reference_share`` / ``current_share`` the normalised importances;
    ``reference_mean`` / ``current_mean`` the mean signed SHAP values (the
    direction in which the feature pushes the output). ``z`` and ``p_value``
    are the Welch-type test's (None when the test is off or the feature was not
    evaluated) and ``p_threshold`` the corrected level its p-value was compared
    with. ``status`` is ``"ok"``, ``"insufficient_data"`` (fewer than
    ``min_samples`` values on a side) or ``"negligible"`` (a share of importance
    below ``min_share`` on both sides); ``drift`` is false for the latter two.
    """

    name: str
    reference_mean_abs: float
    current_mean_abs: float
    relative_change: float
    reference_share: float
    current_share: float
    reference_mean: float
    current_mean: float
    z: float | None
    p_value: float | None
    p_threshold: float | None
    threshold: float
    drift: bool
    n_reference: int
    n_current: int
    status: str = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN and infinities as None)."""
        return {
            "name": self.name,
            "reference_mean_abs": _finite(self.reference_mean_abs),
            "current_mean_abs": _finite(self.current_mean_abs),
            "relative_change": _finite(self.relative_change),
            "reference_share": _finite(self.reference_share),
            "current_share": _finite(self.current_share),
            "reference_mean": _finite(self.reference_mean),
            "current_mean": _finite(self.current_mean),
            "z": None if self.z is None else _finite(self.z),
            "p_value": self.p_value,
            "p_threshold": self.p_threshold,
            "threshold": self.threshold,
            "drift": self.drift,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributionDriftReport:
    """Every feature's attribution change, the share-of-importance distance and the verdict.

    ``share_distance`` is the total variation distance between the two
    normalised importance vectors (NaN when a side has no importance at all or
    fewer than ``min_samples`` rows); ``share_drift`` is whether it reached
    ``share_threshold``. ``drift`` is true when any feature drifted or the
    shares did.
    """

    features: tuple[FeatureAttributionDrift, ...]
    share_distance: float
    share_threshold: float | None
    share_drift: bool
    drift: bool
    threshold: float
    alpha: float | None
    correction: Correction
    rows_reference: int
    rows_current: int

    @property
    def drifted(self) -> tuple[FeatureAttributionDrift, ...]:
        """The features whose attribution drifted, largest relative change first."""
        return tuple(f for f in self.by_change() if f.drift)

    def by_change(self) -> tuple[FeatureAttributionDrift, ...]:
        """The features ordered drifted first, then by decreasing ``|relative change|``, name."""

        def key(f: FeatureAttributionDrift) -> tuple[bool, float, str]:
            change = abs(f.relative_change) if not math.isnan(f.relative_change) else -1.0
            return (not f.drift, -change, f.name)

        return tuple(sorted(self.features, key=key))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (features drifted first)."""
        return {
            "drift": self.drift,
            "share_distance": _finite(self.share_distance),
            "share_threshold": self.share_threshold,
            "share_drift": self.share_drift,
            "threshold": self.threshold,
            "alpha": self.alpha,
            "correction": self.correction.value,
            "rows": {"reference": self.rows_reference, "current": self.rows_current},
            "features": [f.to_dict() for f in self.by_change()],
        }


def attribution_drift(
    reference: AttributionSummary,
    current: AttributionSummary,
    *,
    threshold: float = 0.25,
    alpha: float | None = 0.05,
    correction: Correction | str = Correction.BENJAMINI_HOCHBERG,
    share_threshold: float | None = 0.1,
    min_share: float = 0.01,
    min_samples: int = 30,
) -> AttributionDriftReport:
    """Compare the attribution of a window with the reference's; see the module docstring.

    A feature drifts when ``|relative change| >= threshold`` and, unless
    ``alpha`` is None, its Welch-type z test rejects at ``alpha`` after
    ``correction`` across features. ``share_threshold`` (None: off) applies to
    the total variation distance between normalised importances. Features need
    ``min_samples`` values on both sides, and a share of importance of at least
    ``min_share`` on one side, to be decided (and tested). Returns an
    :class:`AttributionDriftReport` over the union of both summaries' features.
    """
    if not (math.isfinite(threshold) and threshold > 0):
        raise InvalidParameterError("threshold", "a positive number", threshold)
    if alpha is not None and not 0 < alpha < 1:
        raise InvalidParameterError("alpha", "between 0 and 1 (exclusive), or None", alpha)
    correction = Correction.parse(correction)
    if share_threshold is not None and not 0 < share_threshold <= 1:
        raise InvalidParameterError("share_threshold", "in (0, 1], or None", share_threshold)
    if not 0 <= min_share < 1:
        raise InvalidParameterError("min_share", "in [0, 1)", min_share)
    if min_samples < 1:
        raise InvalidParameterError("min_samples", "at least 1", min_samples)
    names = sorted(set(reference.features) | set(current.features))
    ref = reference.merge(AttributionSummary.empty(names))
    cur = current.merge(AttributionSummary.empty(names))
    ref_mean, cur_mean = _ratio(ref.abs_sum, ref.counts), _ratio(cur.abs_sum, cur.counts)
    ref_signed, cur_signed = _ratio(ref.total, ref.counts), _ratio(cur.total, cur.counts)
    ref_shares, cur_shares = _shares(ref.abs_sum, ref.counts), _shares(cur.abs_sum, cur.counts)
    enough = (ref.counts >= min_samples) & (cur.counts >= min_samples)
    zeros = np.zeros(len(names))
    relevant = (
        np.maximum(
            zeros if ref_shares is None else ref_shares, zeros if cur_shares is None else cur_shares
        )
        >= min_share
    )
    decided = enough & relevant
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(
            ref_mean > 0,
            (cur_mean - ref_mean) / ref_mean,
            np.where(cur_mean > 0, np.inf, 0.0),
        )
        change = np.where(np.isnan(ref_mean) | np.isnan(cur_mean), np.nan, change)
        spread = np.sqrt(ref._variance_of_mean() + cur._variance_of_mean())
        # Both sides constant: equal means are no change, different ones a certain change.
        constant = np.where(cur_mean == ref_mean, 0.0, np.copysign(np.inf, cur_mean - ref_mean))
        z = np.where(spread > 0, (cur_mean - ref_mean) / spread, constant)
        z = np.where(np.isnan(spread), np.nan, z)  # fewer than two values on a side: no test
    p = np.array([math.erfc(abs(v) / math.sqrt(2.0)) for v in z.tolist()])
    tested = [
        k for k in range(len(names)) if alpha is not None and decided[k] and math.isfinite(p[k])
    ]
    levels = corrected_thresholds(
        [float(p[k]) for k in tested], [float(alpha or 0.0)] * len(tested), correction
    )
    p_threshold = dict(zip(tested, levels, strict=True))
    features = []
    for k, name in enumerate(names):
        drift = bool(decided[k] and abs(change[k]) >= threshold)
        if k in p_threshold:
            drift = drift and bool(p[k] <= p_threshold[k])
        features.append(
            FeatureAttributionDrift(
                name=name,
                reference_mean_abs=float(ref_mean[k]),
                current_mean_abs=float(cur_mean[k]),
                relative_change=float(change[k]),
                reference_share=math.nan if ref_shares is None else float(ref_shares[k]),
                current_share=math.nan if cur_shares is None else float(cur_shares[k]),
                reference_mean=float(ref_signed[k]),
                current_mean=float(cur_signed[k]),
                z=float(z[k]) if k in p_threshold else None,
                p_value=float(p[k]) if k in p_threshold else None,
                p_threshold=p_threshold.get(k),
                threshold=threshold,
                drift=drift,
                n_reference=int(ref.counts[k]),
                n_current=int(cur.counts[k]),
                status=(
                    "insufficient_data" if not enough[k] else "ok" if relevant[k] else "negligible"
                ),
            )
        )
    distance = math.nan
    if ref_shares is not None and cur_shares is not None and min(ref.rows, cur.rows) >= min_samples:
        distance = float(0.5 * np.abs(ref_shares - cur_shares).sum())
    share_drift = share_threshold is not None and distance >= share_threshold
    return AttributionDriftReport(
        features=tuple(features),
        share_distance=distance,
        share_threshold=share_threshold,
        share_drift=share_drift,
        drift=share_drift or any(f.drift for f in features),
        threshold=threshold,
        alpha=alpha,
        correction=correction,
        rows_reference=ref.rows,
        rows_current=cur.rows,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftImpact:
    """One feature's drift weighted by how much the model relies on it.

    ``impact = statistic * importance``, ``importance`` the feature's share of
    the reference's mean ``|SHAP|`` (0 when the model's attributions do not
    cover it); NaN when the statistic is NaN (feature not evaluated).
    """

    name: str
    statistic: float
    importance: float
    impact: float

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN and infinities as None)."""
        return {
            "name": self.name,
            "statistic": _finite(self.statistic),
            "importance": _finite(self.importance),
            "impact": _finite(self.impact),
        }


def drift_impact_ranking(
    drift_statistics: Mapping[str, float], importance: Mapping[str, float]
) -> tuple[DriftImpact, ...]:
    """Rank features by ``drift statistic x reference importance``, largest first.

    ``importance`` is each feature's mean ``|SHAP|`` on the reference (or
    already its share, e.g. :meth:`AttributionSummary.importance`); it is
    normalised here to sum to 1, so the impact of a feature is at most its
    statistic. Features of ``drift_statistics`` missing from ``importance`` get
    importance 0 (their drift cannot move the model's output through them);
    features only in ``importance`` are left out. Ties are ordered by name;
    NaN statistics (features not evaluated) come last. Importances must be
    finite and non-negative, statistics non-negative (or NaN).

    The product is meaningful only when every statistic is on one scale.
    Pass a sample-size-free distance in [0, 1], the same for every feature:
    :func:`comparable_statistics` gives each feature's ``effect_size`` from a
    drift report (the Kolmogorov-Smirnov distance for numeric features, the
    total variation distance for categorical ones, whatever method decided
    drift). Statistics of ``ks``, ``total_variation`` and ``hellinger`` are
    such distances already and may be used as they are. Do not pass p-values
    (smaller is more drift), test statistics that grow with the sample size
    (chi-square, G, Anderson-Darling, Cramer-von Mises) or unbounded
    distances (PSI, Wasserstein, which has the feature's units).
    """
    weights: dict[str, float] = {}
    for name, value in importance.items():
        weight = float(value)
        if not (math.isfinite(weight) and weight >= 0):
            raise InvalidParameterError(
                f"importance[{name!r}]", "a finite, non-negative number", value
            )
        weights[name] = weight
    total = math.fsum(weights.values())
    impacts = []
    for name, value in drift_statistics.items():
        statistic = float(value)
        if not (math.isnan(statistic) or (math.isfinite(statistic) and statistic >= 0)):
            raise InvalidParameterError(
                f"drift_statistics[{name!r}]", "a finite, non-negative number or NaN", value
            )
        share = weights.get(name, 0.0) / total if total > 0 else 0.0
        impacts.append(
            DriftImpact(name=name, statistic=statistic, importance=share, impact=statistic * share)
        )
    return tuple(
        sorted(impacts, key=lambda d: (math.isnan(d.impact), -np.nan_to_num(d.impact), d.name))
    )


def comparable_statistics(report: DriftReport) -> dict[str, float]:
    """Return each evaluated feature's effect size in [0, 1], for :func:`drift_impact_ranking`.

    The effect size is the Kolmogorov-Smirnov distance (numeric) or the total
    variation distance (categorical) whatever the report's method, so features
    decided by different methods compare. Features with too little data are
    left out; the prediction column is not a feature and is not included.
    """
    return {
        f.name: float(f.effect_size)
        for f in report.features
        if f.status == "ok" and math.isfinite(f.effect_size)
    }


def _ratio(sums: FloatArray, counts: IntArray) -> FloatArray:
    """``sums / counts`` with NaN where the count is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        result: FloatArray = np.where(counts > 0, sums / counts, np.nan)
    return result


def _shares(abs_sum: FloatArray, counts: IntArray) -> FloatArray | None:
    """Mean ``|SHAP|`` normalised to sum to 1 (0 without values); None when all are 0."""
    means = np.nan_to_num(_ratio(abs_sum, counts), nan=0.0)
    total = float(means.sum())
    if not total > 0:
        return None
    shares: FloatArray = means / total
    return shares


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

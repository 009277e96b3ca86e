r"""Data quality of a window against the reference, from the window's sketch.

:func:`data_quality` checks, per profiled feature (``n`` = the feature's rows
in the window, ``k`` = its finite, respectively non-missing, values):

* ``missing``: ``(missing + infinite + invalid) / n`` -- every value the
  feature cannot use, the same share as ``FeatureDrift.missing_share``;
* ``type_violation`` (numeric): ``invalid / n``, values that are not numbers
  (a string in a numeric column);
* ``out_of_range`` (numeric): the share of the ``k`` finite values outside the
  reference's ``[min, max]``, or outside configured ``bounds[feature] =
  (low, high)`` (inclusive; ``-inf``/``inf`` for one-sided bounds). Infinite
  values count as missing, not out of range;
* ``unseen_category`` (categorical): ``unseen / k``, values outside the
  reference's categories (which includes the reference's own rare labels
  beyond ``max_categories``, hence the comparison with the reference below);
* ``constant``: 1 when the window has more than one value and all are equal
  (numeric ``min == max``; categorical one distinct label), else 0;

and for the whole window:

* ``new_features``: columns of the window (``current_columns``) that the
  profile does not know; pass only feature columns, not ids, timestamps,
  predictions or labels, or raise the threshold;
* ``absent_features``: profiled features missing from ``current_columns``
  (or from the window's sketch).

Every check compares a ``value`` with a ``threshold`` and fails when
``value > threshold``; an undefined value (NaN: a feature without rows) passes.
The ratio checks are relative to the reference: ``threshold = reference value
+ allowed increase`` where the reference value is the same ratio on the
profile's own sketch (0 for ``out_of_range`` on the reference's range, by
construction). So a feature that was 30% missing in training fails at 35%, not
at 5%. The defaults (:class:`DataQualityThresholds`):

* ``missing`` +0.05: a window of 400 rows drawn at the reference's missing
  rate fails with probability 6e-4 when that rate is 10% (1.4% at 30%);
* ``type_violation`` +0.01 and ``out_of_range`` +0.01: both are near 0 for
  data like the reference (a new value falls outside the range of ``R``
  reference values with probability ``2 / (R + 1)``: with ``R = 1,000`` a
  window of 400 rows fails with probability 1.4e-3), so 1% is a real change;
* ``unseen_category`` +0.05;
* ``constant``: on (fails when the window is constant and the reference was
  not); ``new_features`` 0 and ``absent_features`` 0: any schema change fails.

Out-of-range counts. On the reference's range they are exact: the sketch's
first bin holds exactly the values below the reference minimum and its last
the values above the maximum. Configured bounds fall anywhere in the bins, so
the count is an interval ``[certain, possible]``:

* bins wholly outside the bounds count in both ends; a bound equal to a bin
  edge (an observed reference quantile) or outside the window's ``[min, max]``
  is resolved exactly;
* the bin containing a bound is known to hold values in ``(edge_lo, edge_hi]``
  and in ``[min, max]``; for the end bins (and a column without reference
  values) their sum ``S`` of ``k_b`` values is kept too, and a value range
  ``[a, b]`` with ``a < U < b`` gives ``(S - k_b U) / (b - U) <= above U <
  (S - k_b a) / (U - a)``; a window whose maximum exceeds ``U`` has at least
  one value above it. A value below ``L`` is a value not above ``L``'s float
  predecessor, so the low side uses the same interval.

The check's ``value`` is the *certain* share (a check never fails because of
the sketch's resolution) and ``upper`` the possible share; their difference is
at most the window's share of values in the two bins that contain the bounds
(about ``1/bins`` of the reference's mass each for bounds inside the
reference's range).

>>> import pandas as pd
>>> from detectors.profile import ReferenceProfile
>>> profile = ReferenceProfile.from_frame(pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5] * 25}))
>>> window = profile.sketch(pd.DataFrame({"x": [2.5, 9.5, None, 3.5]}))
>>> report = data_quality(profile, window, current_columns=["x"])
>>> report.passed, [(c.check.value, c.value) for c in report.failed]
(False, [('missing', 0.25), ('out_of_range', 0.3333333333333333)])
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from detectors.errors import IncompatibleSketchError, InvalidParameterError
from detectors.kinds import ColumnKind
from detectors.profile import ReferenceProfile
from detectors.sketch import (
    CategoricalSketch,
    FeatureSketch,
    NumericSketch,
    WindowSketch,
)

_EPS = float(np.finfo(np.float64).eps)


class QualityCheckName(StrEnum):
    """The data-quality checks; the value is the name used in reports and metrics."""

    MISSING = "missing"
    TYPE_VIOLATION = "type_violation"
    OUT_OF_RANGE = "out_of_range"
    UNSEEN_CATEGORY = "unseen_category"
    CONSTANT = "constant"
    NEW_FEATURES = "new_features"
    ABSENT_FEATURES = "absent_features"


@dataclass(frozen=True, slots=True, kw_only=True)
class DataQualityThresholds:
    """How much worse than the reference a window may be before a check fails.

    Ratio thresholds (``missing``, ``type_violation``, ``out_of_range``,
    ``unseen_category``) are allowed increases over the reference's ratio;
    ``new_features`` and ``absent_features`` are allowed counts; ``math.inf``
    disables a check. ``constant=False`` disables the constant-column check.
    ``bounds`` maps numeric features to inclusive ``(low, high)`` bounds that
    replace the reference's range in ``out_of_range``. Defaults and their
    reasons are in the module docstring.
    """

    missing: float = 0.05
    type_violation: float = 0.01
    out_of_range: float = 0.01
    unseen_category: float = 0.05
    constant: bool = True
    new_features: float = 0
    absent_features: float = 0
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        limits = {
            "missing": self.missing,
            "type_violation": self.type_violation,
            "out_of_range": self.out_of_range,
            "unseen_category": self.unseen_category,
            "new_features": self.new_features,
            "absent_features": self.absent_features,
        }
        for name, value in limits.items():
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and not math.isnan(value) and value >= 0
            ):
                raise InvalidParameterError(name, "a number >= 0 (math.inf disables)", value)
        for feature, pair in self.bounds.items():
            if (
                not isinstance(pair, tuple | list)
                or len(pair) != 2
                or any(math.isnan(float(v)) for v in pair)
                or float(pair[0]) > float(pair[1])
            ):
                raise InvalidParameterError(
                    f"bounds[{feature!r}]", "(low, high) with low <= high, not NaN", pair
                )
        object.__setattr__(
            self, "bounds", {k: (float(lo), float(hi)) for k, (lo, hi) in self.bounds.items()}
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class QualityCheck:
    """One check of one feature (``feature`` None for the window-level checks).

    Fails when ``value > threshold``. ``reference`` is the same measure on the
    reference. ``upper`` equals ``value`` unless the value is an interval
    (out-of-range share against configured bounds: ``value`` is certain,
    ``upper`` possible). ``columns`` names the features of
    ``new_features``/``absent_features``.
    """

    check: QualityCheckName
    feature: str | None
    value: float
    threshold: float
    passed: bool
    reference: float = 0.0
    upper: float = math.nan
    columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if math.isnan(self.upper):
            object.__setattr__(self, "upper", self.value)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN and infinity as None)."""
        return {
            "check": self.check.value,
            "feature": self.feature,
            "value": _json_float(self.value),
            "upper": _json_float(self.upper),
            "reference": _json_float(self.reference),
            "threshold": _json_float(self.threshold),
            "passed": self.passed,
            "columns": list(self.columns),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DataQualityReport:
    """Every check of one window; ``passed`` is true when all checks pass."""

    checks: tuple[QualityCheck, ...]
    rows: int
    passed: bool

    @property
    def failed(self) -> tuple[QualityCheck, ...]:
        """The checks that failed, in report order."""
        return tuple(c for c in self.checks if not c.passed)

    def for_feature(self, feature: str | None) -> tuple[QualityCheck, ...]:
        """The checks of ``feature`` (None: the window-level checks)."""
        return tuple(c for c in self.checks if c.feature == feature)

    def get(self, check: QualityCheckName | str, feature: str | None = None) -> QualityCheck:
        """Return one check by name and feature; KeyError if it was not run."""
        name = QualityCheckName(check)
        for c in self.checks:
            if c.check is name and c.feature == feature:
                return c
        raise KeyError((name.value, feature))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict."""
        return {
            "passed": self.passed,
            "rows": self.rows,
            "checks": [c.to_dict() for c in self.checks],
        }


def data_quality(
    profile: ReferenceProfile,
    current: WindowSketch,
    thresholds: DataQualityThresholds | None = None,
    *,
    current_columns: Collection[str] | None = None,
) -> DataQualityReport:
    """Return the data-quality checks of the window sketched in ``current``.

    ``current_columns`` are the window's feature columns, for the new and absent
    feature checks (default: the features of ``current``). A profiled feature
    missing from ``current``'s sketch is reported as absent and skips its other
    checks. Configured ``bounds`` must name numeric features of the profile.
    """
    thresholds = thresholds or DataQualityThresholds()
    for name in thresholds.bounds:
        if profile.specs.get(name) is None or profile.specs[name].kind is not ColumnKind.NUMERIC:
            raise InvalidParameterError(
                f"bounds[{name!r}]", "keyed by a numeric feature of the profile", name
            )
    columns = set(current.features if current_columns is None else current_columns)
    checks: list[QualityCheck] = []
    for name in profile.specs:
        reference = profile.reference.features[name]
        window = current.features.get(name)
        if window is None:
            continue
        checks.extend(_feature_checks(name, reference, window, thresholds))
    new = sorted(columns - set(profile.specs))
    absent = [n for n in profile.specs if n not in columns or n not in current.features]
    checks.append(_count_check(QualityCheckName.NEW_FEATURES, new, thresholds.new_features))
    checks.append(
        _count_check(QualityCheckName.ABSENT_FEATURES, absent, thresholds.absent_features)
    )
    return DataQualityReport(
        checks=tuple(checks), rows=current.rows, passed=all(c.passed for c in checks)
    )


def _feature_checks(
    name: str,
    reference: FeatureSketch,
    window: FeatureSketch,
    thresholds: DataQualityThresholds,
) -> list[QualityCheck]:
    """The missing check, the checks of the feature's kind, and the constant check."""
    kind_checks: list[QualityCheck]
    if isinstance(reference, NumericSketch) and isinstance(window, NumericSketch):
        bounds = thresholds.bounds.get(name)
        ref_out = _out_of_range(reference, bounds)[0]
        out, out_upper = _out_of_range(window, bounds)
        kind_checks = [
            _ratio_check(
                QualityCheckName.TYPE_VIOLATION,
                name,
                _share(window.invalid, _rows(window)),
                _share(reference.invalid, _rows(reference)),
                thresholds.type_violation,
            ),
            _ratio_check(
                QualityCheckName.OUT_OF_RANGE,
                name,
                out,
                ref_out,
                thresholds.out_of_range,
                upper=out_upper,
            ),
        ]
    elif isinstance(reference, CategoricalSketch) and isinstance(window, CategoricalSketch):
        kind_checks = [
            _ratio_check(
                QualityCheckName.UNSEEN_CATEGORY,
                name,
                _share(window.unseen, window.count),
                _share(reference.unseen, reference.count),
                thresholds.unseen_category,
            )
        ]
    else:
        raise IncompatibleSketchError(f"feature {name!r} has a different kind in the window")
    missing = _ratio_check(
        QualityCheckName.MISSING, name, _missing(window), _missing(reference), thresholds.missing
    )
    return [missing, *kind_checks, _constant_check(name, window, reference, thresholds)]


def _ratio_check(
    check: QualityCheckName,
    feature: str,
    value: float,
    reference: float,
    increase: float,
    *,
    upper: float = math.nan,
) -> QualityCheck:
    threshold = (0.0 if math.isnan(reference) else reference) + increase
    return QualityCheck(
        check=check,
        feature=feature,
        value=value,
        threshold=threshold,
        passed=not value > threshold,
        reference=reference,
        upper=upper,
    )


def _constant_check(
    name: str,
    window: FeatureSketch,
    reference: FeatureSketch,
    thresholds: DataQualityThresholds,
) -> QualityCheck:
    value = float(is_constant(window))
    was = float(is_constant(reference))
    # A constant reference, or a disabled check, allows a constant window.
    threshold = 1.0 if was or not thresholds.constant else 0.0
    return QualityCheck(
        check=QualityCheckName.CONSTANT,
        feature=name,
        value=value,
        threshold=threshold,
        passed=value <= threshold,
        reference=was,
    )


def _count_check(check: QualityCheckName, names: list[str], allowed: float) -> QualityCheck:
    return QualityCheck(
        check=check,
        feature=None,
        value=float(len(names)),
        threshold=float(allowed),
        passed=len(names) <= allowed,
        columns=tuple(names),
    )


def is_constant(sketch: FeatureSketch) -> bool:
    """Whether the sketch holds more than one value and all of them are equal."""
    if sketch.count < 2:
        return False
    if isinstance(sketch, NumericSketch):
        return sketch.min == sketch.max
    distinct = int(np.count_nonzero(sketch.counts)) + len(sketch.top_unseen)
    return distinct == 1


def _rows(sketch: NumericSketch) -> int:
    return sketch.count + sketch.missing + sketch.infinite + sketch.invalid


def _missing(sketch: FeatureSketch) -> float:
    if isinstance(sketch, NumericSketch):
        return _share(sketch.missing + sketch.infinite + sketch.invalid, _rows(sketch))
    return _share(sketch.missing, sketch.missing + sketch.count)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _out_of_range(sketch: NumericSketch, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """Return the (certain, possible) share of finite values outside ``bounds``.

    Without bounds, the values outside the reference's range: the end bins,
    exactly (NaN when the reference had no finite value, so no range).
    """
    n = sketch.count
    if not n:
        return math.nan, math.nan
    if bounds is None:
        if sketch.spec.edges.size == 0:
            return math.nan, math.nan
        outside = int(sketch.counts[0] + sketch.counts[-1])
        return outside / n, outside / n
    low, high = bounds
    above = count_above(sketch, high)
    not_below = count_above(sketch, float(np.nextafter(low, -np.inf)))
    certain = above[0] + (n - not_below[1])
    possible = above[1] + (n - not_below[0])
    return certain / n, min(possible, n) / n


def count_above(sketch: NumericSketch, bound: float) -> tuple[int, int]:
    """Return ``(certain, possible)``: how many of the sketch's finite values exceed ``bound``.

    Exact when ``bound`` is a bin edge or outside the sketch's ``[min, max]``;
    otherwise the uncertainty is the count of the bin containing ``bound``,
    narrowed by the bin's sum for the end bins (module docstring).
    """
    n = sketch.count
    if not n or not sketch.max > bound:
        return 0, 0
    if sketch.min > bound:
        return n, n
    edges = sketch.spec.edges
    j = int(np.searchsorted(edges, bound, side="left"))  # edges[:j] < bound <= edges[j:]
    certain = int(sketch.counts[j + 1 :].sum())
    if j < edges.size and edges[j] == bound:
        return certain, certain
    k = int(sketch.counts[j])
    low = max(float(edges[j - 1]) if j > 0 else -math.inf, sketch.min)
    high = min(float(edges[j]) if j < edges.size else math.inf, sketch.max)
    # min <= bound < max here, so the window's maximum lies above the bound.
    lo, hi = (1 if certain == 0 else 0), k
    total = _bin_sum(sketch, j)
    if k and total is not None:
        lo, hi = _sum_bounds(total, k, low, high, bound, lo, hi)
    if certain + hi >= n:
        # The window's minimum is at or below the bound: one value at least is not above it.
        hi = n - 1 - certain
    return certain + lo, certain + hi


def _bin_sum(sketch: NumericSketch, j: int) -> float | None:
    """The sum of bin ``j``'s values when the sketch keeps it (end bins only)."""
    last = sketch.spec.edges.size
    if last == 0:
        return sketch.total
    if j == 0:
        return sketch.under_sum
    if j == last:
        return sketch.over_sum
    return None


def _sum_bounds(
    total: float, k: int, low: float, high: float, bound: float, lo: int, hi: int
) -> tuple[int, int]:
    """Narrow ``[lo, hi]``, how many of ``k`` values in ``[low, high]`` exceed ``bound``.

    The values sum to ``total``; see the module docstring for the two inequalities.
    """
    scale = max(abs(low), abs(high), abs(bound), abs(total) / k)
    # The float sum of k values is off by at most about k eps sum|v| (naive order).
    slack = (k * k + 2 * k) * _EPS * scale
    if high > bound:
        lo = max(lo, math.ceil((total - k * bound - slack) / (high - bound)))
    if bound > low:
        hi = min(hi, math.floor((total - k * low + slack) / (bound - low)))
    return max(0, min(lo, k)), max(0, min(hi, k))


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None

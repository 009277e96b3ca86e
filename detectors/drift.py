"""Drift reports: every feature compared with the reference, decided, and summarised.

Entry points:

* :func:`compare_sketches` -- a profile and a window sketch (the service path);
* :func:`compare_frames` -- two data frames, through a profile and a sketch by
  default or on the raw rows with ``exact=True``.

Default method per column kind, and why:

* numeric -> ``ks`` (Kolmogorov-Smirnov): distribution-free, sensitive to any
  change of shape, location or scale, calibrated at every sample size (exact
  p-values up to 10,000 rows), and computable from the quantile-bin sketch
  with a proven error bound (about 0.001 with the default 1,000 bins);
* categorical -> ``chi_square`` (chi-square test of homogeneity): the standard
  two-sample test for counts, exact from a sketch (the sketch keeps the counts);
* correction ``bh`` (Benjamini-Hochberg): with tens of features, uncorrected
  tests at 0.05 report some drift on most windows by chance; BH bounds the
  expected share of false discoveries among the drifted features at alpha
  without Bonferroni's loss of power.

A feature drifts when it is both **detectable** (the test rejects at the
corrected threshold, or the distance reaches its threshold) and **material**
(the lower confidence bound of its effect size, see :mod:`detectors.effect`,
is at least ``min_effect_size``, by default :data:`DEFAULT_MIN_EFFECT_SIZE`).
A test on a million rows detects a 0.01 sd wobble; the materiality rule keeps
it from being called drift, and at 500 rows the confidence bound keeps noise
from passing for a material change. The default threshold and confidence come
from the calibration study (``benchmarks/calibration.py``, README "How the
drift decision was calibrated").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from detectors._arrays import label_counts, numeric_values
from detectors.decisions import Correction, corrected_thresholds
from detectors.effect import effect_lower_bound
from detectors.errors import InvalidParameterError
from detectors.kinds import ColumnKind
from detectors.methods import DRIFT_METHODS, DriftMethod, MethodResult
from detectors.pairs import CategoricalPair, NumericPair, Pair
from detectors.profile import ReferenceProfile
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    NumericSketch,
    WindowSketch,
)

#: Row count from which :func:`compare_frames` sorts numeric columns on several threads.
PARALLEL_ROWS = 250_000

#: Default materiality threshold on the effect size (KS or total variation distance): the
#: largest value for which the calibration study keeps >= 95% power on 0.2 sd / TV 0.1 shifts
#: at 5,000 rows per side for every feature type it tries, rounded down. For a normal feature
#: it is a location shift of 0.075 sd.
DEFAULT_MIN_EFFECT_SIZE = 0.03
#: Default confidence of the effect size's lower bound: an effect below the threshold is
#: declared material in at most 5% of windows.
DEFAULT_EFFECT_CONFIDENCE = 0.95

DEFAULT_METHODS: Mapping[ColumnKind, str] = {
    ColumnKind.NUMERIC: "ks",
    ColumnKind.CATEGORICAL: "chi_square",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftSettings:
    """How features are compared and decided.

    ``methods`` picks a method per feature (else the kind's default in
    ``numeric_method`` / ``categorical_method``); ``thresholds`` sets a
    threshold per method name (else ``alpha`` for tests and the method's
    default for distances). ``min_samples`` is the fewest non-missing values
    each side needs before a feature is evaluated; below it the feature is
    reported as ``insufficient_data`` and does not count.

    Materiality: a feature is material when the lower confidence bound (at
    ``effect_confidence``, one-sided) of its effect size is at least its
    threshold: ``min_effect_sizes[feature]`` if given, else
    ``min_effect_size``. ``min_effect_size`` None or 0 switches the rule off
    (every detectable feature drifts); ``effect_confidence`` None compares the
    plain estimate instead of the bound.
    """

    numeric_method: str = DEFAULT_METHODS[ColumnKind.NUMERIC]
    categorical_method: str = DEFAULT_METHODS[ColumnKind.CATEGORICAL]
    methods: Mapping[str, str] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    correction: Correction | str = Correction.BENJAMINI_HOCHBERG
    min_effect_size: float | None = DEFAULT_MIN_EFFECT_SIZE
    min_effect_sizes: Mapping[str, float] = field(default_factory=dict)
    effect_confidence: float | None = DEFAULT_EFFECT_CONFIDENCE
    drift_share: float = 0.5
    min_samples: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "correction", Correction.parse(self.correction))
        known = DRIFT_METHODS.names()
        kind_defaults = {
            "numeric_method": (self.numeric_method, ColumnKind.NUMERIC),
            "categorical_method": (self.categorical_method, ColumnKind.CATEGORICAL),
        }
        for param, (name, kind) in kind_defaults.items():
            supporting = [n for n in known if DRIFT_METHODS[n].supports(kind)]
            if name not in supporting:
                raise InvalidParameterError(param, f"one of {', '.join(supporting)}", name)
        for feature, name in self.methods.items():
            if name not in known:
                raise InvalidParameterError(
                    f"methods[{feature!r}]", f"one of {', '.join(known)}", name
                )
        for name, value in self.thresholds.items():
            if name not in known:
                raise InvalidParameterError(
                    "thresholds", f"keyed by one of {', '.join(known)}", name
                )
            if not (math.isfinite(value) and value > 0):
                raise InvalidParameterError(f"thresholds[{name!r}]", "a positive number", value)
        if not 0 < self.alpha < 1:
            raise InvalidParameterError("alpha", "between 0 and 1 (exclusive)", self.alpha)
        if self.min_effect_size is not None and not 0 <= self.min_effect_size <= 1:
            raise InvalidParameterError("min_effect_size", "between 0 and 1", self.min_effect_size)
        for feature, value in self.min_effect_sizes.items():
            if not 0 <= value <= 1:
                raise InvalidParameterError(
                    f"min_effect_sizes[{feature!r}]", "between 0 and 1", value
                )
        if self.effect_confidence is not None and not 0 < self.effect_confidence < 1:
            raise InvalidParameterError(
                "effect_confidence", "between 0 and 1 (exclusive) or None", self.effect_confidence
            )
        if not 0 < self.drift_share <= 1:
            raise InvalidParameterError("drift_share", "in (0, 1]", self.drift_share)
        if self.min_samples < 1:
            raise InvalidParameterError("min_samples", "at least 1", self.min_samples)

    def method_for(self, feature: str, kind: ColumnKind) -> DriftMethod:
        """Return the method that compares ``feature`` of ``kind``."""
        default = self.numeric_method if kind is ColumnKind.NUMERIC else self.categorical_method
        return DRIFT_METHODS.create(self.methods.get(feature, default))

    def min_effect_for(self, feature: str) -> float:
        """Return the materiality threshold of ``feature`` (0 when the rule is off)."""
        if feature in self.min_effect_sizes:
            return float(self.min_effect_sizes[feature])
        return float(self.min_effect_size or 0.0)

    def threshold_for(self, method: DriftMethod) -> float:
        """Return the decision threshold of ``method`` before any correction."""
        if method.name in self.thresholds:
            return float(self.thresholds[method.name])
        return self.alpha if method.is_test else method.default_threshold


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDrift:
    """The drift result of one feature (or of the prediction column).

    ``detectable``: the method found a difference (p-value at most the
    corrected threshold, or distance at least the threshold). ``material``: the
    effect size's lower confidence bound ``effect_size_lower`` is at least
    ``min_effect_size`` (always true when that is 0). ``drift`` is both, and is
    what the rest of the system acts on. ``status`` is ``"ok"`` or
    ``"insufficient_data"``; all three are false for the latter.
    ``missing_share`` is the current data's share of missing, infinite or
    invalid values. ``severity`` is how far past its threshold the feature is
    (>= 1 means detectable).
    """

    name: str
    kind: ColumnKind
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drift: bool
    detectable: bool
    material: bool
    effect_size: float
    bound: float
    n_reference: int
    n_current: int
    missing_share: float
    status: str = "ok"
    effect_size_lower: float = math.nan
    min_effect_size: float = 0.0

    @property
    def severity(self) -> float:
        """How far past the threshold: ``-log p / -log threshold`` or ``statistic / threshold``."""
        if self.status != "ok" or not math.isfinite(self.statistic):
            return 0.0
        if self.p_value is not None:
            p = max(self.p_value, 1e-300)
            return math.log(p) / math.log(self.threshold) if self.threshold < 1 else 0.0
        return self.statistic / self.threshold

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form used by ``driftline check --format json``."""
        return {
            "name": self.name,
            "kind": self.kind.value,
            "method": self.method,
            "statistic": _finite(self.statistic),
            "p_value": None if self.p_value is None else _finite(self.p_value),
            "threshold": self.threshold,
            "drift": self.drift,
            "detectable": self.detectable,
            "material": self.material,
            "effect_size": _finite(self.effect_size),
            "effect_size_lower": _finite(self.effect_size_lower),
            "min_effect_size": self.min_effect_size,
            "bound": _finite(self.bound),
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "missing_share": self.missing_share,
            "status": self.status,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    """Every feature's result, the dataset-drift decision and the prediction drift."""

    features: tuple[FeatureDrift, ...]
    drift_share: float
    dataset_drift: bool
    drift_share_threshold: float
    prediction: FeatureDrift | None
    rows_reference: int
    rows_current: int
    correction: Correction
    exact: bool

    @property
    def drifted(self) -> tuple[FeatureDrift, ...]:
        """The features that drifted, most severe first."""
        return tuple(f for f in self.by_severity() if f.drift)

    def by_severity(self) -> tuple[FeatureDrift, ...]:
        """The features ordered drifted first, then by decreasing severity, then by name."""
        return tuple(sorted(self.features, key=lambda f: (not f.drift, -f.severity, f.name)))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object of the ``check --format json`` contract."""
        return {
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "features": [f.to_dict() for f in self.by_severity()],
            "prediction_drift": None if self.prediction is None else self.prediction.to_dict(),
            "rows": {"reference": self.rows_reference, "current": self.rows_current},
            "correction": self.correction.value,
            "exact": self.exact,
        }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True, slots=True)
class _Comparison:
    name: str
    kind: ColumnKind
    method: DriftMethod
    result: MethodResult
    missing_share: float
    effect_lower: float


def _compare(
    name: str,
    kind: ColumnKind,
    method: DriftMethod,
    pair: Pair,
    current: FeatureSketch,
    settings: DriftSettings,
) -> _Comparison:
    outcome = method.compare(pair, name)
    lower = effect_lower_bound(pair, outcome.effect_size, settings.effect_confidence)
    return _Comparison(name, kind, method, outcome, missing_share(current), lower)


def pair_of(reference: FeatureSketch, current: FeatureSketch) -> Pair:
    """Return the pair of two sketches of one feature."""
    if isinstance(reference, NumericSketch) and isinstance(current, NumericSketch):
        return NumericPair.from_sketches(reference, current)
    if isinstance(reference, CategoricalSketch) and isinstance(current, CategoricalSketch):
        return CategoricalPair.from_sketches(reference, current)
    raise InvalidParameterError("sketches", "of the same kind", (reference, current))


def missing_share(sketch: FeatureSketch) -> float:
    """Share of the sketch's rows that were missing, infinite or not of the feature's type."""
    if isinstance(sketch, NumericSketch):
        bad = sketch.missing + sketch.infinite + sketch.invalid
    else:
        bad = sketch.missing
    total = bad + sketch.count
    return bad / total if total else 0.0


def compare_sketches(
    profile: ReferenceProfile,
    current: WindowSketch,
    settings: DriftSettings | None = None,
    *,
    prediction: str | None = None,
    reference: WindowSketch | None = None,
) -> DriftReport:
    """Compare a window's sketch with the reference and decide drift.

    ``prediction`` names the feature that holds the model's output: it is
    reported as prediction drift and left out of the dataset drift share.
    ``reference`` replaces the profile's own sketch (a rolling reference).
    """
    settings = settings or DriftSettings()
    base = reference or profile.reference
    comparisons = []
    for name, spec in profile.specs.items():
        method = settings.method_for(name, spec.kind)
        ref_sketch, cur_sketch = base.features[name], current.features[name]
        pair = pair_of(ref_sketch, cur_sketch)
        comparisons.append(_compare(name, spec.kind, method, pair, cur_sketch, settings))
    return _decide(comparisons, settings, prediction, base.rows, current.rows, exact=False)


def compare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: DriftSettings | None = None,
    *,
    kinds: Mapping[str, str | ColumnKind] | None = None,
    prediction: str | None = None,
    exact: bool = False,
    bins: int | None = None,
    threads: int | None = None,
) -> DriftReport:
    """Compare two data frames column by column (the columns of ``reference`` that are monitored).

    With ``exact=False`` (default) this is exactly what the service computes
    for a window holding ``current``'s rows. With ``exact=True`` numeric
    statistics come from the raw values (slower, no sketch bound). ``threads``
    > 1 sorts numeric columns in parallel; by default (None) up to 4 threads
    are used when a frame has at least :data:`PARALLEL_ROWS` rows (below that
    the pool costs more than it saves).
    """
    settings = settings or DriftSettings()
    if threads is None:
        large = max(len(reference), len(current)) >= PARALLEL_ROWS
        threads = min(4, os.cpu_count() or 1) if large else 1
    options = {} if bins is None else {"bins": bins}
    profile = ReferenceProfile.from_frame(reference, kinds, threads=threads, **options)  # type: ignore[arg-type]
    if not exact:
        sketch = profile.sketch(current, threads=threads)
        return compare_sketches(profile, sketch, settings, prediction=prediction)
    comparisons = []
    for name, spec in profile.specs.items():
        method = settings.method_for(name, spec.kind)
        pair: Pair
        if isinstance(spec, CategoricalSpec):
            counts, missing = label_counts(current[name])
            cur_sketch: FeatureSketch = CategoricalSketch.from_counts(spec, counts, missing)
            ref_sketch = profile.reference.features[name]
            pair = pair_of(ref_sketch, cur_sketch)
        else:
            ref_values = numeric_values(reference[name])[0]
            finite, missing, infinite, invalid = numeric_values(current[name])
            pair = NumericPair.from_values(ref_values, finite)
            cur_sketch = NumericSketch.from_values(spec, finite, missing, infinite, invalid)
        comparisons.append(_compare(name, spec.kind, method, pair, cur_sketch, settings))
    return _decide(comparisons, settings, prediction, len(reference), len(current), exact=True)


def _decide(
    comparisons: list[_Comparison],
    settings: DriftSettings,
    prediction: str | None,
    rows_reference: int,
    rows_current: int,
    *,
    exact: bool,
) -> DriftReport:
    enough = {
        c.name: min(c.result.n_reference, c.result.n_current) >= settings.min_samples
        and math.isfinite(c.result.statistic)
        for c in comparisons
    }
    features = [c for c in comparisons if c.name != prediction]
    tests = [c for c in features if c.method.is_test and enough[c.name]]
    corrected = dict(
        zip(
            (c.name for c in tests),
            corrected_thresholds(
                [float(c.result.p_value) for c in tests],  # type: ignore[arg-type]
                [settings.threshold_for(c.method) for c in tests],
                Correction(settings.correction),
            ),
            strict=True,
        )
    )
    decided = []
    predicted: FeatureDrift | None = None
    for c in comparisons:
        threshold = corrected.get(c.name, settings.threshold_for(c.method))
        outcome = _feature(c, threshold, settings, enough[c.name])
        if c.name == prediction:
            predicted = outcome
        else:
            decided.append(outcome)
    evaluated = [f for f in decided if f.status == "ok"]
    share = sum(f.drift for f in evaluated) / len(evaluated) if evaluated else 0.0
    return DriftReport(
        features=tuple(decided),
        drift_share=share,
        dataset_drift=bool(evaluated) and share >= settings.drift_share,
        drift_share_threshold=settings.drift_share,
        prediction=predicted,
        rows_reference=rows_reference,
        rows_current=rows_current,
        correction=Correction(settings.correction),
        exact=exact,
    )


def _feature(
    c: _Comparison, threshold: float, settings: DriftSettings, enough: bool
) -> FeatureDrift:
    r = c.result
    if not enough:
        detectable = False
    elif r.p_value is not None:
        detectable = r.p_value <= threshold
    else:
        detectable = r.statistic >= threshold
    min_effect = settings.min_effect_for(c.name)
    material = enough and (min_effect <= 0 or bool(c.effect_lower >= min_effect))
    return FeatureDrift(
        name=c.name,
        kind=c.kind,
        method=c.method.name,
        statistic=r.statistic,
        p_value=r.p_value,
        threshold=threshold,
        drift=bool(detectable and material),
        detectable=bool(detectable),
        material=bool(material),
        effect_size=r.effect_size,
        bound=r.bound,
        n_reference=r.n_reference,
        n_current=r.n_current,
        missing_share=c.missing_share,
        status="ok" if enough else "insufficient_data",
        effect_size_lower=c.effect_lower,
        min_effect_size=min_effect,
    )

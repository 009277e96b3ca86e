"""The contract every registered drift method keeps, checked generically over the registry.

A new method module is picked up by ``DRIFT_METHODS.names()`` and runs through every
test here without any change to this file; what differs between methods lives in
the small per-method table :data:`NO_CHANGE_STATISTIC`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from detectors.drift import DriftSettings, compare_frames
from detectors.errors import IncompatibleMethodError, InvalidParameterError, UnknownMethodError
from detectors.kinds import ColumnKind
from detectors.methods import DRIFT_METHODS
from detectors.methods.base import DriftMethod, MethodResult
from detectors.pairs import UNSEEN, CategoricalPair, NumericPair, Pair
from detectors.profile import ReferenceProfile

ROWS = 2000
CATEGORIES = np.array(["a", "b", "c"])
#: Statistic of each method on two identical samples; ``None`` where it is not a constant
#: (the standardised Anderson-Darling statistic is centred on its null mean, not zero).
NO_CHANGE_STATISTIC: dict[str, float | None] = {"anderson_darling": None}


def sample(kind: ColumnKind, *, shifted: bool, seed: int) -> pd.Series:
    """Seeded values of ``kind``: N(0, 1) or N(1, 1); categories 50/30/20% or 20/30/50%."""
    rng = np.random.default_rng(seed)
    if kind is ColumnKind.NUMERIC:
        return pd.Series(rng.normal(1.0 if shifted else 0.0, 1.0, ROWS))
    p = [0.2, 0.3, 0.5] if shifted else [0.5, 0.3, 0.2]
    return pd.Series(rng.choice(CATEGORIES, ROWS, p=p))


def sketch_pair(reference: pd.Series, current: pd.Series, kind: ColumnKind) -> Pair:
    """The pair the service compares: the reference profile's sketch and the current sketch."""
    profile = ReferenceProfile.from_frame(pd.DataFrame({"x": reference}), {"x": kind})
    reference_sketch = profile.reference.features["x"]
    current_sketch = profile.specs["x"].sketch(current)
    if kind is ColumnKind.NUMERIC:
        return NumericPair.from_sketches(reference_sketch, current_sketch)
    return CategoricalPair.from_sketches(reference_sketch, current_sketch)


def supporting(kind: ColumnKind) -> list[str]:
    """Names of the registered methods that compare columns of ``kind``."""
    return DRIFT_METHODS.names(lambda method: method.supports(kind))


def supported_cases(supported: bool) -> list[object]:
    """``(method, kind)`` for every registered method and every kind it does (not) support."""
    return [
        pytest.param(name, kind, id=f"{name}-{kind.value}")
        for name in DRIFT_METHODS.names()
        for kind in ColumnKind
        if (kind in DRIFT_METHODS.create(name).kinds) is supported
    ]


def settings_for(method: DriftMethod) -> DriftSettings:
    """Settings that compare feature ``x`` with ``method`` at its default threshold, uncorrected."""
    alpha = method.default_threshold if method.is_test else 0.05
    return DriftSettings(methods={"x": method.name}, correction="none", alpha=alpha)


def drift_of(method: DriftMethod, reference: pd.Series, current: pd.Series, kind: ColumnKind):
    """The single feature of the sketch-path report comparing ``current`` with ``reference``."""
    report = compare_frames(
        pd.DataFrame({"x": reference}),
        pd.DataFrame({"x": current}),
        settings_for(method),
        kinds={"x": kind},
    )
    (feature,) = report.features
    return feature


@pytest.mark.parametrize(("name", "kind"), supported_cases(True))
def test_identical_samples_show_no_change(name: str, kind: ColumnKind):
    """Same data on both sides: the 'no change' statistic, zero effect, high p and no drift."""
    method = DRIFT_METHODS.create(name)
    values = sample(kind, shifted=False, seed=1)
    result = method.compare(sketch_pair(values, values, kind), "x")
    expected = NO_CHANGE_STATISTIC.get(name, 0.0)
    if expected is not None:
        assert result.statistic == expected
    assert result.effect_size == 0.0
    if method.is_test:
        assert result.p_value is not None
        assert result.p_value >= 0.25
    assert not drift_of(method, values, values, kind).drift


@pytest.mark.parametrize(("name", "kind"), supported_cases(True))
def test_shifted_samples_drift_at_default_threshold(name: str, kind: ColumnKind):
    """A clear shift (one standard deviation; 30 points of mass moved) drifts at the default."""
    method = DRIFT_METHODS.create(name)
    reference = sample(kind, shifted=False, seed=4)
    feature = drift_of(method, reference, sample(kind, shifted=True, seed=5), kind)
    assert feature.threshold == method.default_threshold
    assert feature.drift, feature


@pytest.mark.parametrize(("name", "kind"), supported_cases(True))
def test_result_fields(name: str, kind: ColumnKind):
    """Counts are the sample sizes; p-value only for tests; effect size in [0, 1]."""
    method = DRIFT_METHODS.create(name)
    reference = sample(kind, shifted=False, seed=6)
    current = sample(kind, shifted=True, seed=7).iloc[: ROWS // 2]
    result = method.compare(sketch_pair(reference, current, kind), "x")
    assert (result.n_reference, result.n_current) == (ROWS, ROWS // 2)
    assert (result.p_value is not None) is method.is_test
    assert 0.0 <= result.effect_size <= 1.0
    assert result.bound >= 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.statistic = 0.0  # type: ignore[misc]


def pair_with_empty_side(kind: ColumnKind, empty_side: str) -> Pair:
    """A pair with no value on ``empty_side`` and a few on the other."""
    counts = {"empty": np.zeros(4, np.int64), "full": np.array([5, 3, 2, 1])}
    values = {"empty": np.empty(0), "full": np.array([0.5, 1.5, 1.5, 2.0])}
    sides = ("empty", "full") if empty_side == "reference" else ("full", "empty")
    if kind is ColumnKind.NUMERIC:
        return NumericPair.from_values(values[sides[0]], values[sides[1]])
    return CategoricalPair(
        categories=(*CATEGORIES.tolist(), UNSEEN),
        reference=counts[sides[0]],
        current=counts[sides[1]],
    )


@pytest.mark.parametrize(("name", "kind"), supported_cases(True))
@pytest.mark.parametrize("empty_side", ["reference", "current"])
def test_empty_side_gives_nan(name: str, kind: ColumnKind, empty_side: str):
    """With no value on one side every method returns NaN (None p-value for distances)."""
    method = DRIFT_METHODS.create(name)
    result = method.compare(pair_with_empty_side(kind, empty_side), "x")
    assert math.isnan(result.statistic)
    assert math.isnan(result.effect_size)
    assert result.bound == 0.0
    if method.is_test:
        assert result.p_value is not None
        assert math.isnan(result.p_value)
    else:
        assert result.p_value is None


@pytest.mark.parametrize(("name", "kind"), supported_cases(False))
def test_unsupported_kind_raises(name: str, kind: ColumnKind):
    """Comparing a kind the method does not support raises, naming the method and feature."""
    values = sample(kind, shifted=False, seed=9)
    pair = sketch_pair(values, values, kind)
    with pytest.raises(IncompatibleMethodError, match=f"'{name}'.*{kind.value}.*'income'"):
        DRIFT_METHODS.create(name).compare(pair, "income")
    with pytest.raises(IncompatibleMethodError, match="'x'"):
        compare_frames(
            pd.DataFrame({"x": values}),
            pd.DataFrame({"x": values}),
            DriftSettings(methods={"x": name}),
            kinds={"x": kind},
        )


@pytest.mark.parametrize("name", DRIFT_METHODS.names())
def test_registered_class_is_consistent(name: str):
    """Registry name, kinds, overridden hooks, threshold and title agree for every method."""
    method = DRIFT_METHODS.create(name)
    assert method.name == name
    assert method.title
    assert method.kinds
    assert method.default_threshold > 0
    assert DRIFT_METHODS.create(name) is not method, "create must return a new instance"
    overridden = {
        ColumnKind.NUMERIC: type(method).numeric is not DriftMethod.numeric,
        ColumnKind.CATEGORICAL: type(method).categorical is not DriftMethod.categorical,
    }
    assert {kind for kind, yes in overridden.items() if yes} == set(method.kinds)
    for kind in ColumnKind:
        assert (name in supporting(kind)) is (kind in method.kinds)


def test_unknown_method_lists_available_names():
    """An unknown name raises UnknownMethodError (a KeyError) listing every registered name."""
    with pytest.raises(UnknownMethodError) as error:
        DRIFT_METHODS.create("kolmogorov")
    assert isinstance(error.value, KeyError)
    message = str(error.value)
    assert "'kolmogorov'" in message
    for name in DRIFT_METHODS.names():
        assert name in message
    assert error.value.available == DRIFT_METHODS.names()


def test_method_names_cover_both_kinds():
    """The registry has methods for both kinds and ``DRIFT_METHODS.names()`` is their union."""
    numeric, categorical = supporting(ColumnKind.NUMERIC), supporting(ColumnKind.CATEGORICAL)
    assert numeric
    assert categorical
    assert DRIFT_METHODS.names() == sorted(set(numeric) | set(categorical))


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        pytest.param({"alpha": 1.5}, "alpha", id="alpha-above-1"),
        pytest.param({"alpha": 0.0}, "alpha", id="alpha-zero"),
        pytest.param({"correction": "holm"}, "correction", id="correction"),
        pytest.param({"methods": {"x": "nope"}}, "methods['x']", id="unknown-method"),
        pytest.param({"numeric_method": "chi_square"}, "numeric_method", id="numeric-method"),
        pytest.param({"categorical_method": "ks"}, "categorical_method", id="categorical-method"),
        pytest.param({"thresholds": {"nope": 0.1}}, "thresholds", id="threshold-unknown-method"),
        pytest.param({"thresholds": {"psi": -0.1}}, "thresholds['psi']", id="threshold-negative"),
        pytest.param({"min_effect_size": 1.5}, "min_effect_size", id="min-effect-size"),
        pytest.param({"drift_share": 0.0}, "drift_share", id="drift-share-zero"),
        pytest.param({"drift_share": 1.5}, "drift_share", id="drift-share-above-1"),
        pytest.param({"min_samples": 0}, "min_samples", id="min-samples"),
    ],
)
def test_settings_validation_names_the_parameter(options: dict[str, object], parameter: str):
    """Invalid settings raise InvalidParameterError (a ValueError) naming the parameter."""
    with pytest.raises(InvalidParameterError) as error:
        DriftSettings(**options)  # type: ignore[arg-type]
    assert isinstance(error.value, ValueError)
    assert error.value.name == parameter
    assert str(error.value).startswith(f"{parameter} must be ")


@pytest.mark.parametrize(
    ("options", "parameter"),
    [
        pytest.param({"bins": 15}, "bins", id="bins-not-multiple-of-10"),
        pytest.param({"bins": 0}, "bins", id="bins-zero"),
        pytest.param({"max_categories": 0}, "max_categories", id="max-categories"),
    ],
)
def test_profile_validation_names_the_parameter(options: dict[str, int], parameter: str):
    """Invalid profile options raise InvalidParameterError naming the parameter and its value."""
    frame = pd.DataFrame({"x": [0.5, 1.5, 2.5]})
    with pytest.raises(InvalidParameterError) as error:
        ReferenceProfile.from_frame(frame, **options)
    assert error.value.name == parameter
    assert repr(options[parameter]) in str(error.value)


def test_method_result_is_keyword_only():
    """Results are built by keyword only, so fields cannot be swapped silently."""
    with pytest.raises(TypeError):
        MethodResult(0.0, 1.0, 0.0, 0.0, 1, 1)  # type: ignore[misc]

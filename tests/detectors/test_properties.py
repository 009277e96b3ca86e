"""Property tests: sketches merge exactly, state round-trips, methods never fail on odd input.

Hypothesis draws columns mixing finite values with NaN, +/-inf and None, empty
parts, constant runs and up to :data:`TOP_UNSEEN` distinct labels that are not
in the reference (where the sketch's list of unseen labels is documented exact).
"""

from __future__ import annotations

import json
import math
from functools import reduce

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.drift import DriftSettings, compare_frames, compare_sketches
from detectors.errors import IncompatibleSketchError, StateVersionError
from detectors.kinds import ColumnKind
from detectors.methods import DRIFT_METHODS
from detectors.pairs import UNSEEN, CategoricalPair, NumericPair
from detectors.profile import PROFILE_FORMAT_VERSION, ReferenceProfile
from detectors.sketch import SKETCH_FORMAT_VERSION, TOP_UNSEEN, WindowSketch

PROPERTY_SETTINGS = settings(max_examples=50, deadline=None)

# ---- strategies ----------------------------------------------------------------------------

#: A few values repeated often, so that columns have ties and constant runs.
REPEATED = [0.0, 1.0, 2.5, -3.0]
numeric_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from(REPEATED),
    st.sampled_from([math.nan, math.inf, -math.inf, None]),
)
numeric_columns = st.lists(numeric_values, max_size=40) | st.builds(
    lambda value, size: [value] * size, st.sampled_from(REPEATED), st.integers(0, 30)
)

#: Every label a categorical column can hold: TOP_UNSEEN distinct labels at most, so the
#: unseen labels of any window are tracked exactly. Integers and floats share labels ("1").
LABELS = ["a", "b", "c", 1, 1.0, 2.5, "", "x y", math.inf, -math.inf] + [
    f"u{i}" for i in range(TOP_UNSEEN - 9)
]
categorical_values = st.sampled_from(LABELS) | st.sampled_from([None, math.nan])
categorical_columns = st.lists(categorical_values, max_size=40)


def numeric_series(values: list[float | None]) -> pd.Series:
    """A float column (None becomes NaN, as when a file is read)."""
    return pd.Series(values, dtype=np.float64)


def categorical_series(values: list[object]) -> pd.Series:
    """An object column of mixed labels."""
    return pd.Series(values, dtype=object)


def frame(numeric: list[float | None], categorical: list[object]) -> pd.DataFrame:
    """A two-column frame; the shorter column is padded with missing values."""
    rows = max(len(numeric), len(categorical))
    return pd.DataFrame(
        {
            "x": numeric_series(numeric + [None] * (rows - len(numeric))),
            "c": categorical_series(categorical + [None] * (rows - len(categorical))),
        }
    )


KINDS = {"x": ColumnKind.NUMERIC, "c": ColumnKind.CATEGORICAL}


def profile_of(reference: pd.DataFrame, bins: int) -> ReferenceProfile:
    """The profile of ``reference`` with both columns forced to their kinds."""
    return ReferenceProfile.from_frame(reference, KINDS, bins=bins)


parts_strategy = st.lists(st.tuples(numeric_columns, categorical_columns), min_size=3, max_size=3)
#: A reference whose categorical column has a label (one without is left out of a profile).
reference_strategy = st.tuples(
    numeric_columns, categorical_columns.filter(lambda labels: any(map(pd.notna, labels)))
)
bins_strategy = st.sampled_from([10, 20, 1000])

# ---- merge ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(reference=reference_strategy, parts=parts_strategy, bins=bins_strategy)
def test_merge_is_exact_associative_and_commutative(reference, parts, bins):
    """merge(sketch(a), sketch(b)) == sketch(a + b); merge is associative and commutative."""
    profile = profile_of(frame(*reference), bins)
    frames = [frame(*part) for part in parts]
    a, b, c = (profile.sketch(f) for f in frames)
    whole = profile.sketch(pd.concat(frames, ignore_index=True))
    assert a.merge(b).merge(c) == whole
    assert a.merge(b.merge(c)) == a.merge(b).merge(c)
    assert a.merge(b) == b.merge(a)
    assert profile.empty_sketch().merge(a) == a


@PROPERTY_SETTINGS
@given(chunks=st.lists(st.lists(st.integers(0, 200), max_size=30), min_size=2, max_size=4))
def test_unseen_total_stays_exact_beyond_top_unseen(chunks):
    """With more distinct unseen labels than TOP_UNSEEN the total is exact, kept counts bounded."""
    profile = profile_of(frame([0.5], ["known"]), 10)
    frames = [frame([], [f"new{i}" for i in chunk]) for chunk in chunks]
    merged = reduce(WindowSketch.merge, (profile.sketch(f) for f in frames))
    whole = profile.sketch(pd.concat(frames, ignore_index=True))
    merged_c, whole_c = merged.features["c"], whole.features["c"]
    assert merged_c.unseen == whole_c.unseen == sum(map(len, chunks))
    assert len(merged_c.top_unseen) <= TOP_UNSEEN
    true_counts = pd.Series([f"new{i}" for chunk in chunks for i in chunk]).value_counts()
    for label, count in merged_c.top_unseen.items():
        assert count <= true_counts[label]


# ---- serialisation --------------------------------------------------------------------------


def json_round_trip(data: dict) -> dict:
    """``data`` written to JSON text and read back."""
    return json.loads(json.dumps(data))


@PROPERTY_SETTINGS
@given(
    reference=reference_strategy,
    current=st.tuples(numeric_columns, categorical_columns),
    bins=bins_strategy,
)
def test_profile_and_sketch_round_trip(reference, current, bins):
    """to_dict/from_dict (through JSON) and to_bytes/from_bytes give back equal objects."""
    profile = profile_of(frame(*reference), bins)
    assert ReferenceProfile.from_dict(json_round_trip(profile.to_dict())) == profile
    assert ReferenceProfile.from_bytes(profile.to_bytes()) == profile
    sketch = profile.sketch(frame(*current))
    assert WindowSketch.from_dict(profile.specs, json_round_trip(sketch.to_dict())) == sketch


def stored_profile() -> dict:
    """The serialised profile of a small two-column frame."""
    return profile_of(frame([0.5, 1.5, 2.5], ["a", "b", "a"]), 10).to_dict()


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        pytest.param({"version": PROFILE_FORMAT_VERSION + 1}, StateVersionError, id="newer"),
        pytest.param({"version": 0}, StateVersionError, id="zero"),
        pytest.param({"version": "1"}, StateVersionError, id="text-version"),
        pytest.param({"version": None}, StateVersionError, id="no-version"),
        pytest.param({"format": WindowSketch.format}, IncompatibleSketchError, id="other-format"),
        pytest.param({"format": None}, IncompatibleSketchError, id="no-format"),
    ],
)
def test_profile_version_and_format_are_checked(edit: dict, error: type[Exception]):
    """A newer or invalid version raises StateVersionError; a format IncompatibleSketchError."""
    data = {**stored_profile(), **edit}
    with pytest.raises(error):
        ReferenceProfile.from_dict(data)
    with pytest.raises(error):
        ReferenceProfile.from_bytes(json.dumps(data).encode())


def test_newer_version_error_explains_the_fix():
    """The version error names the found and supported versions and says to upgrade."""
    data = {**stored_profile(), "version": PROFILE_FORMAT_VERSION + 1}
    with pytest.raises(StateVersionError, match="upgrade driftline") as error:
        ReferenceProfile.from_dict(data)
    assert isinstance(error.value, ValueError)
    assert str(PROFILE_FORMAT_VERSION + 1) in str(error.value)


def test_nested_sketch_version_is_checked():
    """A profile whose stored reference sketch is from a newer sketch format is refused."""
    data = stored_profile()
    data["reference"]["version"] = SKETCH_FORMAT_VERSION + 1
    with pytest.raises(StateVersionError):
        ReferenceProfile.from_dict(data)


# ---- methods on arbitrary pairs -------------------------------------------------------------

#: Methods that need more values in total than one per side (AD's null variance divides by
#: (N - 1)(N - 2)(N - 3)); below it they return NaN like an empty side.
MIN_TOTAL = {"anderson_darling": 4}

finite_samples = st.lists(st.floats(-1e6, 1e6) | st.sampled_from(REPEATED), max_size=30)


@st.composite
def numeric_pairs(draw) -> NumericPair:
    """An exact pair, or a sketch pair on the reference's bins, of arbitrary finite samples."""
    reference, current = np.array(draw(finite_samples)), np.array(draw(finite_samples))
    if draw(st.booleans()):
        return NumericPair.from_values(reference, current)
    profile = ReferenceProfile.from_frame(
        pd.DataFrame({"x": reference}), {"x": "numeric"}, bins=draw(bins_strategy)
    )
    sketch = profile.specs["x"].sketch(pd.Series(current, dtype=np.float64))
    return NumericPair.from_sketches(profile.reference.features["x"], sketch)


@st.composite
def categorical_pairs(draw) -> CategoricalPair:
    """A pair of arbitrary counts over up to five categories plus the unseen cell."""
    cells = draw(st.integers(1, 6))
    counts = st.lists(st.integers(0, 50), min_size=cells, max_size=cells)
    return CategoricalPair(
        categories=(*(f"k{i}" for i in range(cells - 1)), UNSEEN),
        reference=np.array(draw(counts), dtype=np.int64),
        current=np.array(draw(counts), dtype=np.int64),
    )


def check_result(name: str, pair: NumericPair | CategoricalPair) -> None:
    """The method's result on ``pair`` is well formed (see the test docstring)."""
    result = DRIFT_METHODS.create(name).compare(pair)
    n, m = pair.n_reference, pair.n_current
    undefined = n == 0 or m == 0 or n + m < MIN_TOTAL.get(name, 2)
    assert math.isnan(result.statistic) is undefined, result
    if undefined:
        return
    assert math.isfinite(result.statistic), result
    assert 0.0 <= result.effect_size <= 1.0, result
    assert result.bound >= 0.0, result
    if result.p_value is not None:
        assert 0.0 <= result.p_value <= 1.0, result


@PROPERTY_SETTINGS
@given(pair=numeric_pairs())
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", DRIFT_METHODS.names(lambda m: m.supports(ColumnKind.NUMERIC)))
def test_numeric_methods_never_fail(name: str, pair: NumericPair):
    """On any pair: no exception; statistic finite (NaN only without data); p, effect in [0, 1]."""
    check_result(name, pair)


@PROPERTY_SETTINGS
@given(pair=categorical_pairs())
@pytest.mark.parametrize("name", DRIFT_METHODS.names(lambda m: m.supports(ColumnKind.CATEGORICAL)))
def test_categorical_methods_never_fail(name: str, pair: CategoricalPair):
    """On any counts: no exception; statistic finite (NaN only without data); p, effect in [0,1]."""
    check_result(name, pair)


# ---- reports on degenerate data -------------------------------------------------------------


@pytest.mark.parametrize(
    "current",
    [
        pytest.param(None, id="no-rows"),
        pytest.param(frame([None, math.nan, math.inf], [None, math.nan, None]), id="no-values"),
    ],
)
def test_empty_current_is_insufficient_data(current: pd.DataFrame | None):
    """A window without values reports every feature as insufficient_data, never as drift."""
    profile = profile_of(frame([0.5, 1.5, 2.5, 4.0], ["a", "b", "a", "c"]), 10)
    window = profile.empty_sketch() if current is None else profile.sketch(current)
    report = compare_sketches(profile, window, DriftSettings(correction="none"))
    assert {f.name: (f.status, f.drift) for f in report.features} == {
        "x": ("insufficient_data", False),
        "c": ("insufficient_data", False),
    }
    assert report.drift_share == 0.0
    assert not report.dataset_drift


def constant_drift(method: str, reference: float, current: float, *, exact: bool) -> bool:
    """Whether ``method`` flags 50 copies of ``current`` against 50 copies of ``reference``."""
    report = compare_frames(
        pd.DataFrame({"x": [reference] * 50}),
        pd.DataFrame({"x": [current] * 50}),
        DriftSettings(numeric_method=method, correction="none"),
        kinds={"x": "numeric"},
        exact=exact,
    )
    return report.features[0].drift


@pytest.mark.parametrize("exact", [False, True], ids=["sketch", "exact"])
@pytest.mark.parametrize("name", DRIFT_METHODS.names(lambda m: m.supports(ColumnKind.NUMERIC)))
def test_same_constant_on_both_sides_is_not_drift(name: str, exact: bool):
    """A constant reference and the same constant current: no method reports drift."""
    assert not constant_drift(name, 2.0, 2.0, exact=exact)


@pytest.mark.parametrize(
    ("current", "exact"),
    [
        pytest.param(3.0, False, id="higher-sketch"),
        pytest.param(3.0, True, id="higher-exact"),
        pytest.param(1.0, False, id="lower-sketch"),
        pytest.param(1.0, True, id="lower-exact"),
    ],
)
def test_different_constant_is_ks_drift(current: float, exact: bool):
    """A constant reference (2.0) and a different constant current: KS reports drift."""
    assert constant_drift("ks", 2.0, current, exact=exact)

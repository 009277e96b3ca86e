"""Column kind inference, overrides, type-change detection and categorical labels.

The rules under test are the ones stated in the docstring of ``detectors/kinds.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors._arrays import label_counts
from detectors.errors import ColumnTypeError, InvalidParameterError
from detectors.kinds import (
    DEFAULT_MAX_INTEGER_LEVELS,
    ColumnKind,
    check_compatible,
    infer_kind,
    infer_kinds,
)
from detectors.labels import canonical_label
from detectors.profile import ReferenceProfile

NUMERIC, CATEGORICAL = ColumnKind.NUMERIC, ColumnKind.CATEGORICAL
LEVELS = DEFAULT_MAX_INTEGER_LEVELS


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param(pd.Series([True, False, True]), CATEGORICAL, id="bool"),
        pytest.param(
            pd.Series([True, None, False], dtype="boolean"), CATEGORICAL, id="nullable-bool"
        ),
        pytest.param(pd.Series(["EU", "US", "EU"]), CATEGORICAL, id="strings"),
        pytest.param(
            pd.Series(["EU", None, "US"], dtype=object), CATEGORICAL, id="strings-with-none"
        ),
        pytest.param(pd.Series(["a", "b"], dtype="category"), CATEGORICAL, id="pandas-categorical"),
        pytest.param(pd.Series(np.arange(LEVELS) % LEVELS), CATEGORICAL, id="ints-at-level-limit"),
        pytest.param(
            pd.Series([1.0, 2.0, np.nan, 3.0]), CATEGORICAL, id="integral-floats-with-nan"
        ),
        pytest.param(pd.Series([1, None, 2], dtype="Int64"), CATEGORICAL, id="nullable-int"),
        pytest.param(pd.Series(np.arange(LEVELS + 1)), NUMERIC, id="ints-over-level-limit"),
        pytest.param(pd.Series(np.arange(1000) * 7), NUMERIC, id="high-cardinality-ints"),
        pytest.param(pd.Series([0.5, 1.25, 3.0]), NUMERIC, id="floats"),
        pytest.param(pd.Series([1.0, 2.5, np.inf, -np.inf]), NUMERIC, id="floats-with-inf"),
        pytest.param(pd.Series(pd.date_range("2024-01-01", periods=3)), None, id="datetime"),
        pytest.param(
            pd.Series(pd.date_range("2024-01-01", periods=3, tz="UTC")), None, id="tz-datetime"
        ),
        pytest.param(pd.Series(pd.to_timedelta([1, 2, 3], unit="s")), None, id="timedelta"),
        pytest.param(pd.Series([np.nan, np.nan]), None, id="all-nan-float"),
        pytest.param(pd.Series([None, None], dtype=object), CATEGORICAL, id="all-none-text"),
        pytest.param(pd.Series([np.inf, -np.inf]), None, id="only-infinite"),
        pytest.param(pd.Series([], dtype=np.float64), None, id="empty"),
    ],
)
def test_infer_kind_follows_documented_rule(series: pd.Series, expected: ColumnKind | None):
    """Each documented rule maps its example column to the documented kind (or not monitored)."""
    assert infer_kind(series) is expected


def test_max_integer_levels_is_the_categorical_cut_off():
    """An integral column is categorical up to ``max_integer_levels`` levels, numeric beyond."""
    column = pd.Series(np.arange(10))
    assert infer_kind(column, max_integer_levels=10) is CATEGORICAL
    assert infer_kind(column, max_integer_levels=9) is NUMERIC


def test_infer_kinds_skips_unmonitored_columns_and_keeps_order():
    """Columns inferred as not monitored are left out; the others keep the frame's order."""
    frame = pd.DataFrame(
        {
            "price": [0.5, 1.5, 2.25],
            "when": pd.date_range("2024-01-01", periods=3),
            "country": ["EU", "US", "EU"],
            "empty": [np.nan] * 3,
        }
    )
    assert infer_kinds(frame) == {"price": NUMERIC, "country": CATEGORICAL}
    assert list(infer_kinds(frame)) == ["price", "country"]


def test_text_column_without_values_is_dropped_from_the_profile():
    """An all-missing text column is inferred categorical but not profiled (nothing to compare)."""
    frame = pd.DataFrame({"price": [0.5, 1.5, 2.25], "note": pd.Series([None] * 3, dtype=object)})
    assert infer_kinds(frame)["note"] is CATEGORICAL
    assert list(ReferenceProfile.from_frame(frame).specs) == ["price"]


def test_overrides_win_over_inference():
    """An override sets the kind even where inference disagrees or would skip the column."""
    frame = pd.DataFrame({"rating": [1, 2, 3], "score": [0.5, 1.5, 2.5], "blank": [np.nan] * 3})
    kinds = infer_kinds(frame, {"rating": "numeric", "score": CATEGORICAL, "blank": "numeric"})
    assert kinds == {"rating": NUMERIC, "score": CATEGORICAL, "blank": NUMERIC}


def test_override_of_absent_column_names_the_parameter():
    """Overriding a column that is not in the data is an error naming the override."""
    with pytest.raises(InvalidParameterError, match="column kind override") as error:
        infer_kinds(pd.DataFrame({"a": [1.5]}), {"b": "numeric"})
    assert error.value.given == "b"


def test_unknown_kind_names_the_parameter():
    """An override with an unknown kind is refused with the allowed kinds in the message."""
    with pytest.raises(InvalidParameterError, match="'numeric' or 'categorical'") as error:
        infer_kinds(pd.DataFrame({"a": [1.5]}), {"a": "ordinal"})
    assert error.value.name == "kind"


@pytest.mark.parametrize(
    ("series", "found"),
    [
        pytest.param(pd.Series(["high", "low", None], dtype=object), "text", id="text"),
        pytest.param(pd.Series(["high", "low"], dtype="string"), "text", id="string-dtype"),
        pytest.param(pd.Series(pd.date_range("2024-01-01", periods=2)), "datetime", id="datetime"),
    ],
)
def test_numeric_column_that_became_non_numeric_raises(series: pd.Series, found: str):
    """A numeric feature whose values are no longer numbers raises ColumnTypeError naming it."""
    with pytest.raises(ColumnTypeError, match="'amount' is numeric") as error:
        check_compatible("amount", NUMERIC, series)
    assert (error.value.feature, error.value.expected, error.value.found) == (
        "amount",
        "numeric",
        found,
    )
    assert isinstance(error.value, TypeError)


@pytest.mark.parametrize(
    ("kind", "series"),
    [
        pytest.param(NUMERIC, pd.Series([1.5, 2.0]), id="numeric-floats"),
        pytest.param(NUMERIC, pd.Series([True, False]), id="numeric-bools"),
        pytest.param(NUMERIC, pd.Series(["1.5", "oops", "2"], dtype=object), id="some-bad-values"),
        pytest.param(NUMERIC, pd.Series([None, None], dtype=object), id="all-missing"),
        pytest.param(CATEGORICAL, pd.Series(["a", "b"]), id="categorical-text"),
        pytest.param(CATEGORICAL, pd.Series([1.5, 2.5]), id="categorical-numbers"),
    ],
)
def test_compatible_columns_pass(kind: ColumnKind, series: pd.Series):
    """Numbers, numeric text with a few bad values, all-missing and any categorical pass."""
    check_compatible("feature", kind, series)


@pytest.mark.parametrize(
    ("value", "label"),
    [
        (True, "true"),
        (np.bool_(False), "false"),
        (3, "3"),
        (np.int64(-7), "-7"),
        (3.0, "3"),
        (np.float32(2.0), "2"),
        (-0.0, "0"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (np.float64(1e20), "100000000000000000000"),
        (float("inf"), "inf"),
        ("EU", "EU"),
        ("3.0", "3.0"),
    ],
)
def test_canonical_label(value: object, label: str):
    """Integral numbers lose their decimal point, booleans are lower case, text is unchanged."""
    assert canonical_label(value) == label


def test_integral_floats_and_ints_count_as_one_level():
    """1 and 1.0 (a column read with and without missing values) are counted as the same level."""
    with_missing, _ = label_counts(pd.Series([1.0, 2.0, np.nan, 1.0]))
    without_missing, _ = label_counts(pd.Series([1, 2, 1]))
    assert with_missing == without_missing == {"1": 2, "2": 1}


def test_label_of_mixed_bool_and_int_does_not_depend_on_row_order():
    """The counts of an object column do not depend on the order of its rows."""
    forward, _ = label_counts(pd.Series([True, 1], dtype=object))
    backward, _ = label_counts(pd.Series([1, True], dtype=object))
    assert forward == backward

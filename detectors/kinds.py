"""Column kinds and how they are inferred from data.

Rule (documented in the README, overridable per column in config):

* booleans, strings, pandas categoricals -> ``categorical``;
* numbers whose non-missing values are all integral and take at most
  ``max_integer_levels`` (default 20) distinct values -> ``categorical``
  (codes, ratings, counts of children: their levels matter, not their spacing);
* every other number -> ``numeric``;
* datetimes, timedeltas and numeric columns with no finite value -> ``None``
  (not monitored: a timestamp always "drifts"). A text column with no value
  at all is inferred categorical (finding out costs a pass over the column)
  and dropped when the profile is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import numpy as np
import pandas as pd

from detectors.errors import InvalidParameterError

#: Integral numeric columns with at most this many levels are treated as categorical.
DEFAULT_MAX_INTEGER_LEVELS = 20


class ColumnKind(StrEnum):
    """What a column holds: ordered numbers, or labels from a finite set."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"

    @classmethod
    def parse(cls, value: str | ColumnKind) -> ColumnKind:
        """Return the kind named by ``value`` ('numeric' or 'categorical')."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidParameterError("kind", "'numeric' or 'categorical'", value) from None


def infer_kind(
    series: pd.Series, max_integer_levels: int = DEFAULT_MAX_INTEGER_LEVELS
) -> ColumnKind | None:
    """Return the kind of ``series`` by the module's rule, or ``None`` if it is not monitored.

    >>> import pandas as pd
    >>> infer_kind(pd.Series([0.5, 1.25, 3.0])).value
    'numeric'
    >>> infer_kind(pd.Series([1, 2, 2, 3])).value
    'categorical'
    >>> infer_kind(pd.Series(["EU", "US"])).value
    'categorical'
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnKind.CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return None
        # Most float columns show a fraction in their first values: test those first.
        head = finite[:1000]
        integral = bool(np.all(head == np.round(head))) and bool(np.all(finite == np.round(finite)))
        if integral and np.unique(finite).size <= max_integer_levels:
            return ColumnKind.CATEGORICAL
        return ColumnKind.NUMERIC
    return ColumnKind.CATEGORICAL


def infer_kinds(
    frame: pd.DataFrame,
    overrides: Mapping[str, str | ColumnKind] | None = None,
    max_integer_levels: int = DEFAULT_MAX_INTEGER_LEVELS,
) -> dict[str, ColumnKind]:
    """Return the kind of every monitored column of ``frame``, in column order.

    ``overrides`` maps column names to a kind and wins over inference; naming a
    column that is not in ``frame`` is an error. Columns inferred as not
    monitored are left out.
    """
    overrides = dict(overrides or {})
    missing = sorted(set(overrides) - set(map(str, frame.columns)))
    if missing:
        raise InvalidParameterError("column kind override", "a column of the data", missing[0])
    kinds: dict[str, ColumnKind] = {}
    for name in frame.columns:
        key = str(name)
        if key in overrides:
            kinds[key] = ColumnKind.parse(overrides[key])
            continue
        kind = infer_kind(frame[name], max_integer_levels)
        if kind is not None:
            kinds[key] = kind
    return kinds


def describe_values(series: pd.Series) -> str:
    """Return a short description of what a column holds, for error messages."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(series.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return "datetime"
    return "text"


def check_compatible(name: str, kind: ColumnKind, series: pd.Series) -> None:
    """Raise :class:`~detectors.errors.ColumnTypeError` if ``series`` cannot be a ``kind`` column.

    A numeric column whose every non-missing value fails to parse as a number
    has changed type; a few bad values do not (they are counted as invalid).
    Any column can be read as categorical labels.
    """
    from detectors.errors import ColumnTypeError

    if kind is not ColumnKind.NUMERIC:
        return
    dtype = series.dtype
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise ColumnTypeError(name, "numeric", describe_values(series))
    present = series.dropna()
    if present.empty:
        return
    if pd.to_numeric(present, errors="coerce").isna().all():
        raise ColumnTypeError(name, "numeric", describe_values(series))

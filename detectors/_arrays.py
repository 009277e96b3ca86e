"""Small numpy helpers shared by the sketch and the exact (raw-row) paths."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def numeric_values(series: pd.Series) -> tuple[FloatArray, int, int, int]:
    """Split a column into its finite values and its missing, infinite and invalid counts.

    Returns ``(finite_values, missing, infinite, invalid)``: ``missing`` counts
    nulls and NaN, ``infinite`` counts +/-inf, ``invalid`` counts non-null values
    that are not numbers (a string in a numeric column). Booleans become 0/1.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        invalid = 0
    else:
        present = series.notna()
        coerced = pd.to_numeric(series, errors="coerce")
        invalid = int((present & coerced.isna()).sum())
        values = coerced.to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(values)
    missing = int(nan.sum()) - invalid
    finite_mask = np.isfinite(values)
    infinite = int(values.size - finite_mask.sum() - nan.sum())
    finite = values if finite_mask.all() else values[finite_mask]
    return finite, missing, infinite, invalid


def canonical_label(value: Any) -> str:
    """Return the string a categorical value is counted under.

    Integral numbers print without a decimal point (``1`` and ``1.0`` are the
    same level, as they are when one file has missing values and the other
    not), booleans as ``true``/``false``, everything else as ``str(value)``.

    >>> [canonical_label(v) for v in (True, 3, 3.0, 2.5, "EU")]
    ['true', '3', '3', '2.5', 'EU']
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)


def label_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Count the non-missing values of a column by canonical label.

    Returns ``(counts, missing)``. Hashing happens once per row (pandas'
    ``factorize``, about twice as fast as ``value_counts`` on object columns);
    the labels are canonicalised per distinct value only.
    """
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if series.dtype == object and not all(isinstance(u, str) for u in uniques):
        # Hashing treats True, 1 and 1.0 as one key; label mixed columns value by value.
        codes, uniques = pd.factorize(series.map(canonical_label, na_action="ignore"))
    tally = np.bincount(codes[codes >= 0], minlength=len(uniques))
    missing = int(series.size - tally.sum())
    counts: dict[str, int] = {}
    for value, count in zip(uniques, tally, strict=True):
        label = canonical_label(value)
        counts[label] = counts.get(label, 0) + int(count)
    return counts, missing

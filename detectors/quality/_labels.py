"""Shared input handling of the quality sketches: labels as strings, finite float arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors._arrays import FloatArray, IntArray
from detectors.errors import InvalidParameterError
from detectors.labels import canonical_label


def label_codes(values: Any, name: str) -> tuple[IntArray, list[str]]:
    """Return ``(codes, labels)``: each row's index into ``labels``, the distinct canonical labels.

    Labels are :func:`detectors.labels.canonical_label` strings (``1``, ``1.0`` and
    ``"1"`` are one label, ``True`` is ``"true"``), as in the categorical sketches.
    Missing labels (None, NaN) are refused: rows without a label carry no quality
    information, and the caller drops them before sketching.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(_one_dimensional(values, name))
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    if series.dtype == object and not all(isinstance(u, str) for u in uniques):
        # Hashing treats True, 1 and 1.0 as one key; label mixed columns value by value.
        codes, uniques = pd.factorize(series.map(canonical_label, na_action="ignore"))
    if (codes < 0).any():
        raise InvalidParameterError(
            name, "labels without missing values", f"{int((codes < 0).sum())} missing"
        )
    labels: list[str] = []
    position: dict[str, int] = {}
    remap = np.empty(len(uniques), dtype=np.int64)
    for k, value in enumerate(uniques):
        label = canonical_label(value)
        if label not in position:
            position[label] = len(labels)
            labels.append(label)
        remap[k] = position[label]
    return remap[np.asarray(codes, dtype=np.int64)], labels


def finite_floats(values: Any, name: str) -> FloatArray:
    """Return ``values`` as a 1-d float64 array; raise unless every value is finite."""
    try:
        array = np.asarray(
            values.to_numpy(dtype=np.float64) if isinstance(values, pd.Series) else values,
            dtype=np.float64,
        )
    except (TypeError, ValueError) as error:
        raise InvalidParameterError(name, "numbers", type(values).__name__) from error
    _one_dimensional(array, name)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise InvalidParameterError(name, "finite numbers", f"{bad} NaN or infinite values")
    return array


def same_length(name: str, expected: int, given: Sequence[Any] | np.ndarray) -> None:
    """Raise unless ``given`` has ``expected`` rows."""
    if len(given) != expected:
        raise InvalidParameterError(name, f"of length {expected} (one per row)", len(given))


def _one_dimensional(values: Any, name: str) -> Any:
    array = np.asarray(values) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise InvalidParameterError(name, "one-dimensional", f"shape {array.shape}")
    return array

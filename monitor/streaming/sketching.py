"""Sketching decoded prediction records into a window's partial sketch (the hot path)."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from detectors._arrays import FloatArray
from detectors.labels import canonical_label
from detectors.performance import CBPESketch
from detectors.sample import RowSample, UInt64Array, candidate_rows, hash_ids
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    NumericSketch,
    NumericSpec,
    WindowSketch,
)
from monitor.analyses.model import PREDICTION, ModelRuntime
from monitor.records import PredictionRecord

log = logging.getLogger(__name__)


def record_keys(partition: int, offsets: Sequence[int]) -> UInt64Array:
    """Return the row-sample keys of records at ``offsets`` of ``partition`` (64-bit hashes).

    A record's place in the log identifies it uniquely and is the same on
    every re-read, so window samples are exact and reproducible (see
    :mod:`detectors.sample`); request ids are optional and may repeat.
    """
    positions = np.asarray(offsets, dtype=np.uint64) | (np.uint64(partition) << np.uint64(48))
    return hash_ids(positions)


def sketch_records(
    runtime: ModelRuntime,
    records: Sequence[PredictionRecord],
    rows: int | None = None,
    *,
    keys: UInt64Array | None = None,
    sample_bound: np.uint64 | None = None,
) -> WindowSketch:
    """Return the sketch of ``records`` on the model's profile (columnar, no data frame).

    Features absent from a record count as missing. ``rows`` overrides the row
    count (default ``len(records)``). When the model keeps window samples
    (``runtime.sample_size``), the sketch also holds the bottom-k sample of the
    records' features keyed by ``keys`` (one 64-bit hash per record, from
    :func:`record_keys`); without ``keys`` the records are keyed by their
    position in ``records``, which is right only for a single call per window.
    ``sample_bound`` is the :attr:`~detectors.sample.RowSample.bound` of the
    sample this one will be merged into: rows above it are not encoded, which
    keeps the merge exact and makes a full window's sample cost a hash per record.
    """
    specs = runtime.profile.specs
    names = runtime.feature_names
    columns: dict[str, Sequence[Any]] = {}
    if names:
        # One C-level lookup per record and a transpose, instead of one .get per value.
        pick = itemgetter(*names) if len(names) > 1 else (lambda f: (f[names[0]],))
        picked: list[tuple[Any, ...]] = []
        for record in records:
            try:
                picked.append(pick(record.features))
            except KeyError:  # a record without some feature: those values are missing
                picked.append(tuple(record.features.get(n) for n in names))
        if picked:
            columns = dict(zip(names, zip(*picked, strict=True), strict=True))
    if PREDICTION in specs:
        key = runtime.config.prediction.field
        columns[PREDICTION] = [r.prediction.get(key) for r in records]
    features: dict[str, FeatureSketch] = {}
    encoded: dict[str, FloatArray] = {}
    positions: npt.NDArray[np.intp] | None = None
    if runtime.sample_size is not None:
        if keys is None:
            keys = hash_ids(np.arange(len(records), dtype=np.int64))
        positions = candidate_rows(keys, runtime.sample_size, sample_bound)
    for name, spec in specs.items():
        values = list(columns.get(name, ()))
        if isinstance(spec, NumericSpec):
            features[name], array = _numeric(spec, values)
            if positions is not None:
                chosen = array[positions]
                encoded[name] = np.where(np.isfinite(chosen), chosen, np.nan)
        else:
            features[name] = _categorical(spec, values)
            if positions is not None and name != PREDICTION:
                chosen_values = [values[i] for i in positions]
                encoded[name] = spec.encode(pd.Series(chosen_values, dtype=object))
    sample = None
    if positions is not None and keys is not None:
        sample = _sample(runtime, encoded, keys[positions], len(records))
    return WindowSketch(
        rows=len(records) if rows is None else rows, features=features, sample=sample
    )


def _sample(
    runtime: ModelRuntime, encoded: dict[str, FloatArray], keys: UInt64Array, seen: int
) -> RowSample:
    """The bottom-k sample of the encoded candidate rows (the prediction is not sampled)."""
    names = runtime.feature_names
    specs = runtime.profile.specs
    matrix = (
        np.column_stack([encoded[name] for name in names])
        if names and keys.size
        else np.empty((keys.size, len(names)), dtype=np.float64)
    )
    return RowSample.from_rows(
        names,
        [specs[name].levels for name in names],
        matrix,
        keys,
        size=runtime.sample_size or 1,
        hashed=True,
        seen=seen,
    )


def score_sketch(runtime: ModelRuntime, records: Sequence[PredictionRecord]) -> CBPESketch:
    """Return the CBPE sketch of the records' finite scores (records without one are skipped).

    Needs ``runtime.estimator``; the sketch is the estimator's (see
    :meth:`detectors.performance.CBPE.sketch`), so sketches of one profile
    version merge exactly.
    """
    if runtime.estimator is None:
        raise ValueError(f"model {runtime.name!r} has no performance estimator")
    scores = [r.prediction.get("score") for r in records]
    finite = [s for s in scores if s is not None and math.isfinite(s)]
    return runtime.estimator.sketch(np.asarray(finite, dtype=np.float64))


def _numeric(spec: NumericSpec, values: list[Any]) -> tuple[NumericSketch, FloatArray]:
    """The sketch of ``values`` and the values as floats, row-aligned (NaN where not a number)."""
    invalid = 0
    try:
        # None becomes NaN and booleans 0/1 in one C-level pass.
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        converted = []
        for value in values:
            if value is None or isinstance(value, int | float):
                converted.append(np.nan if value is None else float(value))
            else:  # a string in a numeric feature: a type violation, not a missing value
                converted.append(np.nan)
                invalid += 1
        array = np.array(converted, dtype=np.float64)
    nan = np.isnan(array)
    finite = np.isfinite(array)
    missing = int(nan.sum()) - invalid
    infinite = int(array.size - finite.sum() - nan.sum())
    sketch = NumericSketch.from_values(
        spec, array[finite], missing=missing, infinite=infinite, invalid=invalid
    )
    return sketch, array


def _categorical(spec: CategoricalSpec, values: list[Any]) -> CategoricalSketch:
    raw = Counter(values)
    missing = raw.pop(None, 0)
    if all(isinstance(value, str) for value in raw):
        return CategoricalSketch.from_counts(spec, raw, missing)
    kinds = set(map(type, values))
    if bool in kinds and (int in kinds or float in kinds):
        # Hashing merges True, 1 and 1.0 into one key; label such columns value by value.
        labels = Counter(canonical_label(value) for value in values if value is not None)
    else:
        # Equal keys have equal labels (1 and 1.0 both label "1"): label each distinct
        # value once instead of every value (integer counts, booleans, numeric codes).
        labels = Counter()
        for value, count in raw.items():
            labels[canonical_label(value)] += count
    return CategoricalSketch.from_counts(spec, labels, missing)

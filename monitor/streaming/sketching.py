"""Sketching decoded prediction records into a window's partial sketch (the hot path)."""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from detectors._arrays import FloatArray, IntArray
from detectors.labels import canonical_label
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
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


def _pick(names: tuple[str, ...], records: Sequence[PredictionRecord]) -> list[tuple[Any, ...]]:
    """Return each record's values of ``names`` as a tuple (None where a feature is absent)."""
    pick = itemgetter(*names) if len(names) > 1 else (lambda f: (f[names[0]],))
    try:
        # One C-level lookup per record and no Python loop when every record has them all.
        return list(map(pick, map(_FEATURES, records)))
    except KeyError:  # a record without some feature: its values are missing
        pass
    picked: list[tuple[Any, ...]] = []
    for record in records:
        try:
            picked.append(pick(record.features))
        except KeyError:
            picked.append(tuple(record.features.get(n) for n in names))
    return picked


_FEATURES = attrgetter("features")


def sketch_records(
    runtime: ModelRuntime,
    records: Sequence[PredictionRecord],
    rows: int | None = None,
    *,
    keys: UInt64Array | None = None,
    sample_bound: np.uint64 | None = None,
    numeric: bool = True,
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
    With ``numeric=False`` the numeric columns are left out of the sketch
    (:func:`accumulate_numeric` counts them; a model with a row sample needs them here).
    """
    specs = runtime.profile.specs
    if not numeric:
        if runtime.sample_size is not None:
            raise ValueError("a sketch with a row sample needs its numeric columns")
        specs = {n: s for n, s in specs.items() if not isinstance(s, NumericSpec)}
    names = tuple(n for n in runtime.feature_names if n in specs)
    columns: dict[str, Sequence[Any]] = {}
    if names:
        # One C-level lookup per record and a transpose, instead of one .get per value.
        picked = _pick(names, records)
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
    array, invalid = _floats(values)
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


# --- numeric columns of many models at once -------------------------------------------------
#
# A poll of records that covers hundreds of models holds a few records per model. Building
# one NumericSketch per (model, feature) per poll then costs a sort, a search and a dozen
# small NumPy calls for a handful of values, and merging it into the window's partial as
# many again. Instead, every numeric value of the poll is binned in one vectorised binary
# search over the edges of all profiles (an arena of concatenated edges), the per-column
# figures come from a few ``reduceat`` calls, and each partial keeps plain count arrays
# (:class:`NumericAccumulator`) that become sketches only when a checkpoint serialises them.


@dataclass(frozen=True, slots=True, eq=False)
class NumericLayout:
    """Where the numeric columns of one profile go: positions in a flat count array.

    ``names``/``specs`` are the profile's numeric columns in profile order (the
    prediction included when it is numeric), ``starts`` the first position of
    each column's bins in a flat array of ``size`` counts, ``order`` every
    column name of the profile (numeric or not) in profile order.
    ``edge_starts``/``edge_lengths`` locate each column's edges in the arena,
    ``feature_rows`` are the positions of ``features`` among ``names``.
    """

    names: tuple[str, ...]
    specs: tuple[NumericSpec, ...]
    starts: npt.NDArray[np.int64]
    n_bins: npt.NDArray[np.int64]
    size: int
    order: tuple[str, ...]
    features: tuple[str, ...]
    has_prediction: bool
    edge_starts: npt.NDArray[np.int64]
    edge_lengths: npt.NDArray[np.int64]
    feature_rows: npt.NDArray[np.intp]


class _EdgeArena:
    """The edges of every numeric spec seen, concatenated once (append-only)."""

    def __init__(self) -> None:
        self._buffer: FloatArray = np.full(1, np.inf)
        self._used = 0  # edges stored; the element after them is the +inf sentinel
        # id(spec) -> (spec, start); the spec is kept so that its id stays unique.
        self._where: dict[int, tuple[NumericSpec, int]] = {}
        self._layouts: dict[int, tuple[object, NumericLayout]] = {}
        self._lock = threading.Lock()

    @property
    def edges(self) -> FloatArray:
        """Every stored column's edges, one after the other, and a trailing +inf."""
        return self._buffer[: self._used + 1]

    def layout(self, runtime: ModelRuntime) -> NumericLayout:
        """Return the :class:`NumericLayout` of ``runtime``'s profile (built once per profile)."""
        profile = runtime.profile
        known = self._layouts.get(id(profile))
        if known is not None and known[0] is profile:
            return known[1]
        with self._lock:  # consumers in threads of one process share the arena
            return self._new_layout(profile)

    def _new_layout(self, profile: ReferenceProfile) -> NumericLayout:
        known = self._layouts.get(id(profile))
        if known is not None and known[0] is profile:
            return known[1]
        specs = profile.specs
        numeric = [(n, s) for n, s in specs.items() if isinstance(s, NumericSpec)]
        for _, spec in numeric:
            if id(spec) not in self._where:
                self._append(spec)
        n_bins = np.array([s.n_bins for _, s in numeric], dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(n_bins)[:-1])).astype(np.int64)
        layout = NumericLayout(
            names=tuple(n for n, _ in numeric),
            specs=tuple(s for _, s in numeric),
            starts=starts,
            n_bins=n_bins,
            size=int(n_bins.sum()),
            order=tuple(specs),
            features=tuple(n for n, _ in numeric if n != PREDICTION),
            has_prediction=PREDICTION in dict(numeric),
            edge_starts=np.array([self._where[id(s)][1] for _, s in numeric], dtype=np.int64),
            edge_lengths=n_bins - 1,
            feature_rows=np.array(
                [i for i, (n, _) in enumerate(numeric) if n != PREDICTION], dtype=np.intp
            ),
        )
        self._layouts[id(profile)] = (profile, layout)
        return layout

    def _append(self, spec: NumericSpec) -> None:
        size = spec.edges.size
        if self._used + size + 1 > self._buffer.size:
            # Doubling keeps registering many profiles linear, not quadratic, in their edges.
            grown = np.empty(max(2 * self._buffer.size, self._used + size + 1))
            grown[: self._used] = self._buffer[: self._used]
            self._buffer = grown
        self._buffer[self._used : self._used + size] = spec.edges
        self._buffer[self._used + size] = np.inf
        self._where[id(spec)] = (spec, self._used)
        self._used += size


_ARENA = _EdgeArena()


def numeric_layout(runtime: ModelRuntime) -> NumericLayout:
    """Return the layout of the numeric columns of ``runtime``'s profile (cached per profile)."""
    return _ARENA.layout(runtime)


#: The float fields of a column without values: min and max NaN, sums 0.
_EMPTY_FLOATS = np.array([np.nan, np.nan, 0.0, 0.0, 0.0, 0.0])


def _empty_floats(columns: int) -> FloatArray:
    """Return ``columns`` rows of :data:`_EMPTY_FLOATS` (as np.tile, without its ~2 us)."""
    out = np.empty((columns, _EMPTY_FLOATS.size))
    out[:] = _EMPTY_FLOATS
    return out


#: Pending bin positions an accumulator holds before it folds them into its counts.
FOLD_AFTER = 1 << 16
#: A fold counts into a dense array instead of sorting once the pending positions reach
#: this fraction (1/2**shift) of the layout's bins.
_DENSE_SHIFT = 3


@dataclass(slots=True, eq=False)
class NumericAccumulator:
    """The numeric part of a partial: per-column counts and figures, updated in place.

    Holds exactly what the :class:`~detectors.sketch.NumericSketch` of each
    numeric column holds (:meth:`sketches` builds them); the counts add up
    exactly, the float sums up to addition order. Counts are sparse: the
    ascending flat positions of the non-empty bins (``index``, positions in
    the layout's flat array) and their ``counts``, plus the positions of the
    values added since the last :meth:`fold`. A partial of a few records thus
    takes a few hundred bytes of memory, not a dense array per column.
    """

    layout: NumericLayout
    index: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    tallies: npt.NDArray[np.int64]  # columns x (missing, infinite, invalid)
    floats: FloatArray  # columns x (min, max, total, total_sq, under_sum, over_sum)
    pending: list[npt.NDArray[np.int64]] = field(default_factory=list)
    pending_size: int = 0

    @classmethod
    def empty(cls, layout: NumericLayout) -> NumericAccumulator:
        """Return the accumulator of no rows."""
        columns = len(layout.names)
        return cls(
            layout=layout,
            index=np.zeros(0, dtype=np.int64),
            counts=np.zeros(0, dtype=np.int64),
            tallies=np.zeros((columns, 3), dtype=np.int64),
            floats=_empty_floats(columns),
        )

    @classmethod
    def of(cls, layout: NumericLayout, sketches: dict[str, FeatureSketch]) -> NumericAccumulator:
        """Return the accumulator holding the numeric ``sketches`` (one per layout column)."""
        acc = cls.empty(layout)
        dense = np.zeros(layout.size, dtype=np.int64)
        for i, name in enumerate(layout.names):
            s = sketches[name]
            if not isinstance(s, NumericSketch):
                raise TypeError(f"feature {name!r} is not numeric")
            start = layout.starts[i]
            dense[start : start + layout.n_bins[i]] = s.counts
            acc.tallies[i] = (s.missing, s.infinite, s.invalid)
            acc.floats[i] = (s.min, s.max, s.total, s.total_sq, s.under_sum, s.over_sum)
        acc.index = np.flatnonzero(dense).astype(np.int64)
        acc.counts = dense[acc.index]
        return acc

    def add(self, positions: npt.NDArray[np.int64]) -> None:
        """Count one value in the bin at each flat position (folded later)."""
        if positions.size:
            self.pending.append(positions)
            self.pending_size += positions.size
            if self.pending_size >= FOLD_AFTER:
                self.fold()

    def fold(self) -> None:
        """Fold the pending positions into ``index``/``counts``."""
        if not self.pending:
            return
        if self.pending_size >= self.layout.size >> _DENSE_SHIFT:
            # Many positions for the bins there are (a busy partial): one counting pass over a
            # dense array is far cheaper than sorting them (same index and counts).
            dense = np.bincount(np.concatenate(self.pending), minlength=self.layout.size)
            dense[self.index] += self.counts
            self.index = np.flatnonzero(dense).astype(np.int64)
            self.counts = dense[self.index]
            self.pending = []
            self.pending_size = 0
            return
        positions = np.concatenate([self.index, *self.pending])
        weights = np.concatenate([self.counts, np.ones(self.pending_size, dtype=np.int64)])
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        first = np.flatnonzero(np.concatenate(([True], positions[1:] != positions[:-1])))
        self.index = positions[first]
        self.counts = np.add.reduceat(weights[order], first)
        self.pending = []
        self.pending_size = 0

    def dense(self) -> npt.NDArray[np.int64]:
        """Return every column's bin counts, one after the other (``layout.size`` counts)."""
        self.fold()
        out = np.zeros(self.layout.size, dtype=np.int64)
        out[self.index] = self.counts
        return out

    def sketches(self) -> dict[str, NumericSketch]:
        """Return one :class:`~detectors.sketch.NumericSketch` per numeric column."""
        layout = self.layout
        dense = self.dense()
        out = {}
        for i, (name, spec) in enumerate(zip(layout.names, layout.specs, strict=True)):
            start = int(layout.starts[i])
            missing, infinite, invalid = (int(v) for v in self.tallies[i])
            low, high, total, total_sq, under, over = (float(v) for v in self.floats[i])
            out[name] = NumericSketch(
                spec=spec,
                counts=dense[start : start + int(layout.n_bins[i])],
                missing=missing,
                infinite=infinite,
                invalid=invalid,
                min=low,
                max=high,
                total=total,
                total_sq=total_sq,
                under_sum=under,
                over_sum=over,
            )
        return out


def fold_all(accumulators: Sequence[NumericAccumulator]) -> None:
    """:meth:`NumericAccumulator.fold` every accumulator, in one sort for all of them."""
    pending = [acc for acc in accumulators if acc.pending]
    busy = [acc for acc in pending if acc.pending_size >= acc.layout.size >> _DENSE_SHIFT]
    for acc in busy:  # folded on its own by counting (see fold)
        acc.fold()
    if busy:
        pending = [acc for acc in pending if acc.pending]
    if len(pending) <= 1:
        for acc in pending:
            acc.fold()
        return
    sizes = np.array([acc.layout.size for acc in pending], dtype=np.int64)
    bases = np.concatenate(([0], np.cumsum(sizes)))
    positions = np.concatenate(
        [
            part + base
            for acc, base in zip(pending, bases, strict=False)
            for part in (acc.index, *acc.pending)
        ]
    )
    weights = np.concatenate(
        [w for acc in pending for w in (acc.counts, np.ones(acc.pending_size, dtype=np.int64))]
    )
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    first = np.flatnonzero(np.concatenate(([True], positions[1:] != positions[:-1])))
    index = positions[first]
    counts = np.add.reduceat(weights[order], first) if first.size else weights[:0]
    cuts = np.searchsorted(index, bases).tolist()
    for i, acc in enumerate(pending):
        acc.index = index[cuts[i] : cuts[i + 1]] - bases[i]
        acc.counts = counts[cuts[i] : cuts[i + 1]]
        acc.pending = []
        acc.pending_size = 0


def _floats(values: Sequence[Any]) -> tuple[FloatArray, int]:
    """The values as floats (NaN where missing or not a number) and how many were not numbers.

    A value is what ``float()`` makes of it: booleans are 0/1 and a string that
    spells a number (``"2.5"``) is that number, as NumPy converts it; any other
    string is a type violation (invalid), not a missing value. The rule is per
    value, so a record counts the same whatever else its batch holds.
    """
    try:
        # None becomes NaN, booleans 0/1 and numeric strings numbers in one C-level pass.
        return np.array(values, dtype=np.float64), 0
    except (TypeError, ValueError):
        converted = []
        invalid = 0
        for value in values:
            if value is None:
                converted.append(np.nan)
                continue
            try:
                converted.append(float(value))
            except (TypeError, ValueError):
                converted.append(np.nan)
                invalid += 1
        return np.array(converted, dtype=np.float64), invalid


def _numeric_matrix(
    runtime: ModelRuntime, layout: NumericLayout, records: Sequence[PredictionRecord]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """The numeric columns of ``records``, column-major (columns x rows), and invalid counts."""
    names = layout.features
    n = len(records)
    matrix = np.empty((len(layout.names), n), dtype=np.float64)
    invalid = np.zeros(len(layout.names), dtype=np.int64)
    if names and n:
        rows = _pick(names, records)
        try:
            # One C-level conversion of every value (None -> NaN, booleans 0/1).
            matrix[layout.feature_rows] = np.array(rows, dtype=np.float64).reshape(n, -1).T
        except (TypeError, ValueError):  # a string that is not a number: column by column
            for row, column in zip(layout.feature_rows, zip(*rows, strict=True), strict=True):
                matrix[row], invalid[row] = _floats(column)
    if layout.has_prediction:
        key = runtime.config.prediction.field
        row = layout.names.index(PREDICTION)
        matrix[row], invalid[row] = _floats([r.prediction.get(key) for r in records])
    return matrix, invalid


def _count_below(
    edges: FloatArray, starts: IntArray, lengths: IntArray, values: FloatArray
) -> IntArray:
    """For each value, how many of its own edges (``edges[start:start+length]``) are below it.

    A branch-free binary search run on every value at once: the bin of a value
    on ascending edges ``e`` is ``searchsorted(e, value, side="left")``, the
    bin ``(e[i-1], e[i]]`` it falls in. NaN is never below an edge (bin 0).
    ``edges`` must have an element after the last column's (a sentinel).
    """
    # The answer stays in [base - start, base - start + n]; n halves whatever the comparison
    # says, so every value takes the same ceil(log2(length)) steps and no mask is needed.
    base = starts.astype(np.int32)
    n = lengths.astype(np.int32)
    half = np.empty_like(n)
    at = np.empty_like(n)
    below = np.empty(values.size, dtype=np.bool_)
    for _ in range(int(n.max(initial=0)).bit_length()):
        np.right_shift(n, 1, out=half)
        np.add(base, half, out=at)
        np.less(edges.take(at), values, out=below)
        n -= half
        half *= below
        base += half
    last = (edges.take(base) < values) & (lengths > 0)
    return (base - starts + last).astype(np.int64)


def accumulate_numeric(
    updates: Sequence[tuple[ModelRuntime, NumericAccumulator, Sequence[PredictionRecord]]],
) -> None:
    """Add the numeric columns of each group of records to its accumulator (one pass for all).

    Each update is ``(runtime, accumulator, records)``; the accumulator's
    layout must be the runtime's. The counts, missing/infinite/invalid tallies,
    minimum and maximum end up exactly as if each group had been sketched with
    :func:`sketch_records` and merged; the float sums equal up to addition order.
    """
    matrices = []
    invalids = []
    widths = []  # rows per group
    edge_starts = []
    edge_lengths = []
    for runtime, acc, records in updates:
        matrix, invalid = _numeric_matrix(runtime, acc.layout, records)
        matrices.append(matrix.ravel())
        invalids.append(invalid)
        widths.append(len(records))
        edge_starts.append(acc.layout.edge_starts)
        edge_lengths.append(acc.layout.edge_lengths)
    if not matrices:
        return
    values = np.concatenate(matrices)
    columns_per_group = np.array([len(s) for s in edge_starts], dtype=np.int64)
    column_rows = np.repeat(np.array(widths, dtype=np.int64), columns_per_group)
    keep = column_rows > 0
    if not keep.any():
        return
    # Each column of each group is one segment of ``values`` (column-major per group).
    seg_starts = (np.cumsum(column_rows) - column_rows)[keep]
    e_start = np.repeat(np.concatenate(edge_starts), column_rows)
    e_length = np.repeat(np.concatenate(edge_lengths), column_rows)
    finite = np.isfinite(values)
    nan = np.isnan(values)
    bins = _count_below(_ARENA.edges, e_start, e_length, values)
    zeroed = np.where(finite, values, 0.0)
    tallies = np.column_stack(
        (
            np.add.reduceat(nan.astype(np.int64), seg_starts),
            np.add.reduceat((~finite & ~nan).astype(np.int64), seg_starts),
        )
    )
    low = np.fmin.reduceat(np.where(finite, values, np.nan), seg_starts)
    high = np.fmax.reduceat(np.where(finite, values, np.nan), seg_starts)
    with np.errstate(over="ignore"):  # a huge value's square is inf, as in the sketch's sum
        squares = zeroed * zeroed
    sums = np.column_stack(
        (
            np.add.reduceat(zeroed, seg_starts),
            np.add.reduceat(squares, seg_starts),
            np.add.reduceat(np.where(bins == 0, zeroed, 0.0), seg_starts),
            np.add.reduceat(np.where((bins == e_length) & (e_length > 0), zeroed, 0.0), seg_starts),
        )
    )
    column = 0  # index among kept columns
    offset = 0  # index into values
    for (_, acc, records), invalid in zip(updates, invalids, strict=True):
        n, width = len(records), len(acc.layout.names)
        if n == 0 or width == 0:
            continue
        end = offset + n * width
        where = np.repeat(acc.layout.starts, n) + bins[offset:end]
        acc.add(where[finite[offset:end]])
        cols = slice(column, column + width)
        acc.tallies[:, 0] += tallies[cols, 0] - invalid
        acc.tallies[:, 1] += tallies[cols, 1]
        acc.tallies[:, 2] += invalid
        floats = acc.floats
        np.fmin(floats[:, 0], low[cols], out=floats[:, 0])
        np.fmax(floats[:, 1], high[cols], out=floats[:, 1])
        floats[:, 2:] += sums[cols]
        column += width
        offset = end

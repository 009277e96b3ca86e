"""A bounded, mergeable sample of whole rows: what the multivariate methods compare.

The per-feature sketches of :mod:`detectors.sketch` forget which values came
from the same row, so they cannot see a change in how features move together
(a correlation that appears or breaks while every marginal stays put). A
:class:`RowSample` keeps up to ``size`` whole rows of a window (or of the
reference) for that purpose, and merges exactly like the sketches do.

How rows are chosen: a *bottom-k sample*. Every row has a 64-bit key, a hash
of something that identifies it; the sample keeps the ``size`` rows with the
smallest keys (ties broken by the row's values, so the order is total). As a
hash is unrelated to the data, those rows are a uniform random sample without
replacement of the rows, and since "the ``k`` smallest of a union" is "the
``k`` smallest of the union of each part's ``k`` smallest",

``merge(sample(a), sample(b)) == sample(a + b)``

exactly, whatever the partitioning and order, with no randomness to seed.
Merging samples of different sizes keeps the smaller size (still exact).

Row keys:

* explicit keys (``keys=``: request ids, ``(partition, offset)`` strings, ...)
  are hashed by :func:`hash_ids`; they must be unique per row and of one type
  everywhere (the id ``1`` and the id ``"1"`` hash differently);
* by default (:func:`row_keys`) the key hashes the row's index label *and* its
  encoded values: a file read into a frame has unique labels (its row
  numbers), slices of a frame keep theirs, so every part of a frame keys its
  rows exactly as the whole frame does, and rows that differ in a value never
  share a key even when labels repeat (frames concatenated without
  ``ignore_index``). Do not renumber the parts of a frame (``reset_index``,
  ``concat(..., ignore_index=True)``) before sampling them separately.

Keys must identify *rows*, not values: keyed by values alone, identical rows
would share a key and enter or leave the sample together, and with discrete
features a sample could consist of a few distinct rows repeated.

What a row holds (one float per profiled feature, see the specs' ``encode``):
a numeric feature's value (NaN when missing, infinite or not a number); a
categorical feature's code, its position among the reference's categories
(most frequent first), ``levels`` for any other label, NaN when missing. The
multivariate methods read :meth:`RowSample.matrix`, which one-hot encodes the
categorical codes: one indicator for each of the ``max_levels`` most frequent
reference categories and one for every other label, a missing label being all
zeros. One-hot because codes have no order or spacing that a distance or a
linear model could use; the most frequent categories only, so that the width
stays bounded for features with hundreds of categories.

Serialised (:meth:`RowSample.to_dict`) keys and values are base64 strings of
their little-endian bytes: exact, and about 11 characters per value.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from detectors._arrays import FloatArray
from detectors.errors import (
    IncompatibleSketchError,
    InvalidParameterError,
    check_int,
    check_version,
)

UInt64Array: TypeAlias = npt.NDArray[np.uint64]
#: Anything :func:`hash_ids` accepts: one id per row.
Ids: TypeAlias = pd.Series | pd.Index | npt.ArrayLike

#: Default number of rows a window's sample keeps.
DEFAULT_SAMPLE_SIZE = 1000
#: Default number of rows the reference's sample keeps.
DEFAULT_REFERENCE_SAMPLE_SIZE = 2000
#: Default number of a categorical feature's reference categories that get their own indicator.
DEFAULT_ONE_HOT_LEVELS = 10
SAMPLE_FORMAT_VERSION = 1

# The hash functions below are part of the sample's meaning: partial samples written by
# different processes (or versions) merge correctly only if they key rows alike. Never
# change them; tests pin their output.
_HASH_KEY = "driftline-rows-1"  # pandas' SipHash key for text ids: exactly 16 bytes
_SEED = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


class ColumnEncoder(Protocol):
    """What a sample needs of a profiled feature: how its column becomes one float per row.

    The feature specs of :mod:`detectors.sketch` (``NumericSpec``,
    ``CategoricalSpec``) implement it. It is declared here, by its user, so
    that this module does not import :mod:`detectors.sketch`, which imports
    this one for a window's sample (checked by import-linter).
    """

    @property
    def levels(self) -> int | None:
        """Number of reference categories (codes ``0..levels-1``); None for a numeric feature."""
        ...

    def encode(self, series: pd.Series) -> FloatArray:
        """Return one float per row of ``series``: its entry in a sampled row."""
        ...


def _mix(h: UInt64Array) -> UInt64Array:
    """The SplitMix64 finalizer: a bijection of 64-bit words that spreads every input bit."""
    h = h ^ (h >> np.uint64(30))
    h = h * _M1
    h = h ^ (h >> np.uint64(27))
    h = h * _M2
    return h ^ (h >> np.uint64(31))


def _canonical(values: FloatArray) -> FloatArray:
    """``values`` with every NaN the same NaN and -0.0 as 0.0, so equal rows have equal bytes."""
    return np.where(np.isnan(values), np.nan, values + 0.0)


def _absorb(h: UInt64Array, column: FloatArray, position: int) -> UInt64Array:
    """Fold one column of floats into the running row hashes ``h``."""
    bits = np.ascontiguousarray(_canonical(column), dtype=np.float64).view(np.uint64)
    # Python ints: numpy scalars warn on the (intended) wrap-around, arrays do not.
    salt = np.uint64(int(_SEED) * (position + 1) % 2**64)
    return _mix(h ^ _mix(bits + salt))


def hash_ids(ids: Ids) -> UInt64Array:
    """Return a 64-bit hash of every id in ``ids`` (request ids, row labels, ...).

    Text is hashed with pandas' SipHash under a fixed key, numbers by their
    bits; the result is the same in every process and run.

    >>> hash_ids(["a", "b"]).tolist() == hash_ids(pd.Series(["a", "b"])).tolist()
    True
    """
    if isinstance(ids, pd.Index):
        series = ids.to_series(index=pd.RangeIndex(len(ids)))
    elif isinstance(ids, pd.Series):
        series = ids
    else:
        series = pd.Series(np.asarray(ids))
    hashed = pd.util.hash_pandas_object(series, index=False, hash_key=_HASH_KEY)
    words = np.asarray(hashed.to_numpy(), dtype=np.uint64)
    return _mix(words ^ _SEED)


def hash_rows(values: npt.ArrayLike, start: UInt64Array | None = None) -> UInt64Array:
    """Return a 64-bit hash of every row of the 2-d float array ``values``.

    ``start`` holds one hash per row to continue from (such as
    :func:`hash_ids` of the row labels); by default every row starts alike.
    NaN payloads and the sign of zero do not matter.
    """
    matrix = np.asarray(values, dtype=np.float64)
    if matrix.ndim != 2:
        raise InvalidParameterError("values", "a 2-d array", f"{matrix.ndim}-d")
    h = np.full(matrix.shape[0], _SEED, dtype=np.uint64) if start is None else start.copy()
    for position in range(matrix.shape[1]):
        h = _absorb(h, matrix[:, position], position)
    return h


def row_keys(frame: pd.DataFrame, specs: Mapping[str, ColumnEncoder]) -> UInt64Array:
    """Return the default key of every row of ``frame``: its index label and encoded values hashed.

    Equal to ``hash_rows(encode_frame(frame, specs), hash_ids(frame.index))``,
    computed one column at a time.
    """
    h = hash_ids(frame.index)
    for position, (name, spec) in enumerate(specs.items()):
        h = _absorb(h, spec.encode(_column(frame, name)), position)
    return h


def encode_frame(frame: pd.DataFrame, specs: Mapping[str, ColumnEncoder]) -> FloatArray:
    """Return the rows of ``frame`` as a sample stores them: one column per spec, in order."""
    columns = [spec.encode(_column(frame, name)) for name, spec in specs.items()]
    if not columns:
        return np.empty((len(frame), 0), dtype=np.float64)
    return _canonical(np.column_stack(columns).astype(np.float64, copy=False))


def one_hot(
    values: FloatArray,
    levels: Sequence[int | None],
    max_levels: int = DEFAULT_ONE_HOT_LEVELS,
) -> FloatArray:
    """Return ``values`` (rows as a sample stores them) with the categorical codes one-hot encoded.

    A numeric column (``levels[j] is None``) is copied. A categorical column
    with ``L`` reference categories becomes ``min(L, max_levels) + 1``
    indicators: one per code below ``min(L, max_levels)`` and one for every
    other code (rarer reference categories and unseen labels); a missing code
    sets none. The width depends on ``levels`` only, never on the data.

    >>> one_hot(np.array([[0.5, 0.0], [1.5, 2.0], [2.5, np.nan]]), [None, 3], max_levels=1)
    array([[0.5, 1. , 0. ],
           [1.5, 0. , 1. ],
           [2.5, 0. , 0. ]])
    """
    if max_levels < 1:
        raise InvalidParameterError("max_levels", "at least 1", max_levels)
    n = values.shape[0]
    blocks: list[FloatArray] = []
    for j, level_count in enumerate(levels):
        column = values[:, j]
        if level_count is None:
            blocks.append(column[:, None])
            continue
        kept = min(level_count, max_levels)
        indicators = np.zeros((n, kept + 1), dtype=np.float64)
        present = np.flatnonzero(~np.isnan(column))
        codes = np.minimum(column[present].astype(np.int64), kept)
        indicators[present, codes] = 1.0
        blocks.append(indicators)
    if not blocks:
        return np.empty((n, 0), dtype=np.float64)
    return np.hstack(blocks)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RowSample:
    """Up to ``size`` rows of a data set: those with the smallest keys (see the module docstring).

    ``columns`` names the features of a row and ``levels`` gives, per column,
    ``None`` for a numeric feature or the number of reference categories of a
    categorical one. ``keys`` (ascending) and ``values`` (one row each) are
    the rows kept; ``seen`` counts every row offered, kept or not. Build with
    :meth:`from_frame` or :meth:`from_rows`, never from the fields directly
    unless they already are a bottom-``size`` selection.

    >>> values = np.arange(10.0).reshape(5, 2)
    >>> whole = RowSample.from_rows(("x", "y"), (None, None), values, np.arange(5), size=3)
    >>> a = RowSample.from_rows(("x", "y"), (None, None), values[:2], np.arange(2), size=3)
    >>> b = RowSample.from_rows(("x", "y"), (None, None), values[2:], np.arange(2, 5), size=3)
    >>> b.merge(a) == whole, whole.rows, whole.seen
    (True, 3, 5)
    """

    columns: tuple[str, ...]
    levels: tuple[int | None, ...]
    size: int
    keys: UInt64Array
    values: FloatArray
    seen: int

    format: ClassVar[str] = "driftline.sample"

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", check_int("size", self.size, 1))  # frozen: store the int
        if len(self.levels) != len(self.columns):
            raise InvalidParameterError(
                "levels", f"one entry per column ({len(self.columns)})", len(self.levels)
            )
        if self.keys.ndim != 1 or self.values.shape != (self.keys.size, len(self.columns)):
            raise InvalidParameterError(
                "values",
                f"an array of shape (len(keys), {len(self.columns)})",
                self.values.shape,
            )
        if self.keys.size > self.size or self.seen < self.keys.size:
            raise InvalidParameterError(
                "keys", f"at most size={self.size} and seen={self.seen} rows", self.keys.size
            )

    @classmethod
    def empty(
        cls,
        columns: Sequence[str],
        levels: Sequence[int | None],
        size: int = DEFAULT_SAMPLE_SIZE,
    ) -> RowSample:
        """Return the sample of zero rows (the identity of :meth:`merge`)."""
        return cls(
            columns=tuple(columns),
            levels=tuple(levels),
            size=size,
            keys=np.empty(0, dtype=np.uint64),
            values=np.empty((0, len(columns)), dtype=np.float64),
            seen=0,
        )

    @classmethod
    def from_rows(
        cls,
        columns: Sequence[str],
        levels: Sequence[int | None],
        values: npt.ArrayLike,
        keys: Ids,
        *,
        size: int = DEFAULT_SAMPLE_SIZE,
        hashed: bool = False,
        seen: int | None = None,
    ) -> RowSample:
        """Return the sample of the rows ``values`` (2-d, encoded as in the module docstring).

        ``keys`` identify the rows and are hashed with :func:`hash_ids`, unless
        ``hashed`` is true: then they already are 64-bit hashes (from
        :func:`row_keys`, :func:`hash_rows` or :func:`hash_ids`) and are used as
        they are. This is the entry point for rows that are not in a data frame
        (the service's records). ``seen`` counts the rows offered when only
        the :func:`candidate_rows` of them are passed (default: the rows passed).
        """
        matrix = _canonical(np.asarray(values, dtype=np.float64))
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            raise InvalidParameterError(
                "values", f"a 2-d array with {len(columns)} columns", matrix.shape
            )
        hashes = np.asarray(keys, dtype=np.uint64) if hashed else hash_ids(keys)
        if hashes.shape != (matrix.shape[0],):
            raise InvalidParameterError("keys", f"one per row ({matrix.shape[0]})", hashes.shape)
        chosen = _bottom(hashes, matrix, size)
        return cls(
            columns=tuple(columns),
            levels=tuple(levels),
            size=size,
            keys=hashes[chosen],
            values=matrix[chosen],
            seen=int(matrix.shape[0]) if seen is None else seen,
        )

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        specs: Mapping[str, ColumnEncoder],
        *,
        size: int = DEFAULT_SAMPLE_SIZE,
        keys: Ids | None = None,
    ) -> RowSample:
        """Return the sample of the rows of ``frame``, one column per spec (profiled feature).

        ``keys`` gives one id per row (hashed with :func:`hash_ids`); by default
        rows are keyed by :func:`row_keys`. Only the rows that can be kept are
        encoded a second time, so the cost beyond hashing does not grow with
        the frame.
        """
        size = check_int("size", size, 1)
        if keys is None:
            hashes = row_keys(frame, specs)
        else:
            hashes = hash_ids(keys)
            if hashes.size != len(frame):
                raise InvalidParameterError("keys", f"one per row ({len(frame)})", hashes.size)
        candidates = _candidates(hashes, size)
        values = encode_frame(frame.iloc[candidates], specs)
        chosen = _bottom(hashes[candidates], values, size)
        return cls(
            columns=tuple(specs),
            levels=tuple(spec.levels for spec in specs.values()),
            size=size,
            keys=hashes[candidates][chosen],
            values=values[chosen],
            seen=len(frame),
        )

    @property
    def rows(self) -> int:
        """Number of rows kept (``min(size, seen)``)."""
        return int(self.keys.size)

    @property
    def bound(self) -> np.uint64 | None:
        """The largest key kept once the sample is full (None before): no larger key can enter."""
        return self.keys[-1] if self.rows == self.size else None

    def matrix(self, max_levels: int = DEFAULT_ONE_HOT_LEVELS) -> FloatArray:
        """Return the kept rows with categorical codes one-hot encoded (see :func:`one_hot`)."""
        return one_hot(self.values, self.levels, max_levels)

    def merge(self, other: RowSample) -> RowSample:
        """Return the sample of the union of both row sets, of the smaller of the two sizes."""
        if self.columns != other.columns or self.levels != other.levels:
            raise IncompatibleSketchError("cannot merge row samples of different features")
        size = min(self.size, other.size)
        keys = np.concatenate((self.keys, other.keys))
        values = np.concatenate((self.values, other.values))
        chosen = _bottom(keys, values, size)
        return RowSample(
            columns=self.columns,
            levels=self.levels,
            size=size,
            keys=keys[chosen],
            values=values[chosen],
            seen=self.seen + other.seen,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RowSample):
            return NotImplemented
        return (
            (self.columns, self.levels, self.size, self.seen)
            == (other.columns, other.levels, other.size, other.seen)
            and np.array_equal(self.keys, other.keys)
            and np.array_equal(self.values, other.values, equal_nan=True)
        )

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict (keys and values as base64 bytes)."""
        return {
            "format": self.format,
            "version": SAMPLE_FORMAT_VERSION,
            "columns": list(self.columns),
            "levels": list(self.levels),
            "size": self.size,
            "seen": self.seen,
            "keys": _encode(self.keys.astype("<u8")),
            "values": _encode(self.values.astype("<f8")),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RowSample:
        """Rebuild a sample from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, SAMPLE_FORMAT_VERSION)
        columns = tuple(str(c) for c in data["columns"])
        keys = np.frombuffer(_decode(data["keys"]), dtype="<u8").astype(np.uint64)
        flat = np.frombuffer(_decode(data["values"]), dtype="<f8").astype(np.float64)
        if flat.size != keys.size * len(columns):
            raise IncompatibleSketchError(
                f"row sample holds {flat.size} values for {keys.size} rows "
                f"of {len(columns)} columns"
            )
        return cls(
            columns=columns,
            levels=tuple(None if v is None else int(v) for v in data["levels"]),
            size=int(data["size"]),
            keys=keys,
            values=flat.reshape(keys.size, len(columns)),
            seen=int(data["seen"]),
        )


def candidate_rows(
    keys: UInt64Array, size: int, bound: np.uint64 | None = None
) -> npt.NDArray[np.intp]:
    """Return the positions (ascending) of the rows that can enter a bottom-``size`` sample.

    Those are the rows whose key is not above the ``size``-th smallest of
    ``keys`` (ties included) and, when the rows will be merged into a sample
    whose :attr:`RowSample.bound` is ``bound``, not above that either. Encoding
    only these rows and passing ``seen=len(keys)`` to :meth:`RowSample.from_rows`
    gives the same merged sample as encoding them all.
    """
    positions = _candidates(keys, size)
    if bound is not None:
        positions = positions[keys[positions] <= bound]
    return positions


def _candidates(keys: UInt64Array, size: int) -> npt.NDArray[np.intp]:
    """Positions of every key not above the ``size``-th smallest (all, with ties), ascending."""
    if keys.size <= size:
        return np.arange(keys.size)
    kth = np.partition(keys, size - 1)[size - 1]
    return np.flatnonzero(keys <= kth)


def _bottom(keys: UInt64Array, values: FloatArray, size: int) -> npt.NDArray[np.intp]:
    """Positions of the ``size`` smallest rows by (key, then values), in that order.

    The order is total (equal key and values means equal rows), so the
    selection does not depend on the order the rows come in.
    """
    candidates = _candidates(keys, size)
    columns = values[candidates]
    # lexsort sorts by its last key first: the hash, then the values left to right.
    order = np.lexsort((*columns.T[::-1], keys[candidates]))
    return np.asarray(candidates[order[:size]], dtype=np.intp)


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """Return one column as a Series (a duplicated column name would give a frame)."""
    column = frame[name]
    if isinstance(column, pd.DataFrame):
        raise KeyError(f"column {name!r} appears more than once in the data")
    return column


def _encode(array: npt.NDArray[Any]) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)

"""A partial's stored payload (sketch, SHAP summary, CBPE sketch) and merging partials.

Stored format
    A partial is written at every checkpoint, one per model, window and
    partition, so its size decides how much the partials table grows. Since
    format 2 the payload is :data:`MAGIC` followed by a zlib stream of a small
    JSON header and a binary block holding the numeric sketches column by
    column: per feature only the non-empty bins (delta-encoded indices and
    their counts, as LEB128 varints), the missing, infinite and invalid
    counts (varints) and the six float fields (little-endian float64, bit for
    bit). Its size follows the records the partial holds, not the bin count:
    100 records x 30 numeric features take about 3.5 KB instead of 68 KB.
    Categorical sketches, the row sample, the SHAP summary and the CBPE sketch
    stay in the header as their ``to_dict()`` JSON (compressed with the rest).

    Payloads of format 1 (plain JSON of ``WindowSketch.to_dict()``, written
    before) start with ``{`` and are still read, so existing databases need no
    migration. Decoding is exact: ``partial_from_bytes(sketch_to_bytes(s))``
    equals ``s`` field for field, floats included.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

import numpy as np
import numpy.typing as npt
import orjson

from detectors.attribution import AttributionSummary
from detectors.errors import IncompatibleSketchError, check_version
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.sample import RowSample
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    FeatureSpec,
    NumericSketch,
    NumericSpec,
    WindowSketch,
    row_sample_from_dict,
)
from monitor.analyses.model import ATTRIBUTION_KEY

#: Key of a partial's CBPE sketch (the scores of its records) in its payload.
PERFORMANCE_KEY = "performance"
#: First bytes of a format-2 payload (format 1 is JSON and starts with ``{``).
MAGIC = b"DLP\x02"
#: Format name and version in a format-2 payload's header.
PARTIAL_FORMAT = "driftline.partial"
PARTIAL_FORMAT_VERSION = 2
#: zlib level 1: measured 1% larger than level 6 on a fleet's partials, 11% less CPU to write.
_ZLIB_LEVEL = 1
_FLOAT_FIELDS = ("min", "max", "total", "total_sq", "under_sum", "over_sum")

UIntArray = npt.NDArray[np.uint64]


class _Mergeable(Protocol):
    def merge(self, other: Self, /) -> Self: ...


M = TypeVar("M", bound=_Mergeable)


def merge_optional(known: M | None, new: M | None) -> M | None:
    """Return ``known`` merged with ``new`` (either alone when the other is None)."""
    if known is None or new is None:
        return known if new is None else new
    return known.merge(new)


@dataclass(frozen=True, slots=True)
class PartialPayload:
    """What a stored partial holds besides its row count.

    ``sketch`` is binned on profile ``profile_version``; ``attribution`` sums
    the records' ``explanations`` (models whose attribution comes from them)
    and ``performance`` is the CBPE sketch of the records' scores (models with
    ``performance_estimation``); both None otherwise.
    """

    profile_version: int
    sketch: WindowSketch
    attribution: AttributionSummary | None = None
    performance: CBPESketch | None = None


@dataclass(frozen=True, slots=True, eq=False)
class NumericColumns:
    """The numeric sketches of a partial as arrays, column by column (what format 2 stores).

    The columns' bins are numbered one after the other (``n_bins`` each);
    ``index`` holds the ascending numbers of the non-empty ones and ``counts``
    their counts. ``tallies`` holds the missing, infinite and invalid counts
    and ``floats`` the minimum, maximum, total, total of squares, underflow
    and overflow sums of each column.
    """

    names: tuple[str, ...]
    n_bins: npt.NDArray[np.int64]
    index: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]
    tallies: npt.NDArray[np.int64]
    floats: npt.NDArray[np.float64]

    @classmethod
    def of(cls, sketches: Mapping[str, NumericSketch]) -> NumericColumns:
        """Return the columns of ``sketches`` (in their order)."""
        values = list(sketches.values())
        dense = (
            np.concatenate([s.counts for s in values]) if values else np.zeros(0, dtype=np.int64)
        )
        index = np.flatnonzero(dense).astype(np.int64)
        return cls(
            names=tuple(sketches),
            n_bins=np.array([s.counts.size for s in values], dtype=np.int64),
            index=index,
            counts=dense[index],
            tallies=np.array(
                [(s.missing, s.infinite, s.invalid) for s in values], dtype=np.int64
            ).reshape(-1, 3),
            floats=np.array(
                [[getattr(s, f) for f in _FLOAT_FIELDS] for s in values], dtype=np.float64
            ).reshape(-1, 6),
        )


def sketch_to_bytes(
    profile_version: int,
    sketch: WindowSketch,
    attribution: AttributionSummary | None = None,
    performance: CBPESketch | None = None,
) -> bytes:
    """Serialise a partial sketch with the profile version whose bins it uses (format 2).

    Returns :data:`MAGIC` and a zlib stream (see the module docstring).
    ``attribution`` and ``performance`` go under the header keys
    ``"attribution"`` and ``"performance"`` when given.
    """
    numeric = {n: s for n, s in sketch.features.items() if isinstance(s, NumericSketch)}
    others = {n: s for n, s in sketch.features.items() if isinstance(s, CategoricalSketch)}
    return columns_to_bytes(
        profile_version,
        sketch.rows,
        list(sketch.features),
        NumericColumns.of(numeric),
        others,
        sketch.sample,
        attribution,
        performance,
    )


@dataclass(frozen=True, slots=True, eq=False)
class PartialParts:
    """A partial given as its parts: what :func:`parts_to_bytes` writes.

    ``order`` is the order of all features; the numeric ones (``numeric``, in
    that order) are the features of ``order`` that are not in ``categorical``.
    ``profile_order`` says that ``order`` is every feature of the profile in
    the profile's order: the payload then leaves it out (the reader has it).
    """

    profile_version: int
    rows: int
    order: Sequence[str]
    numeric: NumericColumns
    categorical: Mapping[str, CategoricalSketch]
    sample: RowSample | None = None
    attribution: AttributionSummary | None = None
    performance: CBPESketch | None = None
    profile_order: bool = False


def columns_to_bytes(
    profile_version: int,
    rows: int,
    order: Sequence[str],
    numeric: NumericColumns,
    categorical: Mapping[str, CategoricalSketch],
    sample: RowSample | None = None,
    attribution: AttributionSummary | None = None,
    performance: CBPESketch | None = None,
) -> bytes:
    """Like :func:`sketch_to_bytes` for a sketch given as its parts (``order``: feature order)."""
    parts = PartialParts(
        profile_version, rows, order, numeric, categorical, sample, attribution, performance
    )
    return parts_to_bytes([parts])[0]


def parts_to_bytes(partials: Sequence[PartialParts]) -> list[bytes]:
    """Serialise many partials (format 2), their numeric blocks encoded in one pass.

    A checkpoint writes one partial per model, window and partition: hundreds
    at once, most of a few records. Encoding their numeric columns together
    leaves zlib and the JSON header as the only per-partial work.
    """
    blocks = _numeric_blocks([p.numeric for p in partials])
    out = []
    for partial, (body, expanded) in zip(partials, blocks, strict=True):
        numeric, categorical = partial.numeric, partial.categorical
        if list(numeric.names) != [n for n in partial.order if n not in categorical]:
            raise ValueError("the numeric columns must be the columns of order not categorical")
        header: dict[str, Any] = {
            "format": PARTIAL_FORMAT,
            "version": PARTIAL_FORMAT_VERSION,
            "profile_version": partial.profile_version,
            "rows": partial.rows,
            "bins": int(numeric.n_bins.sum()),  # checked against the profile on reading
            "categorical": {name: s.to_dict() for name, s in categorical.items()},
        }
        if not partial.profile_order:
            header["order"] = list(partial.order)
        if expanded:
            header["expanded"] = True
        if partial.sample is not None:
            header["sample"] = partial.sample.to_dict()
        if partial.attribution is not None:
            header[ATTRIBUTION_KEY] = partial.attribution.to_dict()
        if partial.performance is not None:
            header[PERFORMANCE_KEY] = partial.performance.to_dict()
        head = orjson.dumps(header)
        packed = zlib.compress(len(head).to_bytes(4, "little") + head + body, _ZLIB_LEVEL)
        out.append(MAGIC + packed)
    return out


def _numeric_blocks(partials: Sequence[NumericColumns]) -> list[tuple[bytes, bool]]:
    """The binary block of each partial's numeric columns: varints, then float64 fields.

    Returns ``(block, expanded)`` per partial. In a partial whose bins hold
    fewer than two values on average (most partials: a few records each), a
    bin of count ``c`` is written as ``c`` positions (gap 0 for the repeats)
    and there is no counts stream: about 7% smaller once compressed.
    """
    if not partials:
        return []
    widths = np.array([len(c.names) for c in partials], dtype=np.int64)  # columns per partial
    n_bins = np.concatenate([c.n_bins for c in partials]).astype(np.int64)
    # Number every bin of every partial one after the other: one search finds all columns.
    col_starts = np.concatenate(([0], np.cumsum(n_bins)[:-1])).astype(np.int64)
    first_col = np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.int64)
    flat_base = np.append(col_starts, np.sum(n_bins))[first_col]
    nnz = np.array([c.index.size for c in partials], dtype=np.int64)
    totals = np.array([int(c.counts.sum()) for c in partials], dtype=np.int64)
    expanded = totals < 2 * nnz
    counts = np.concatenate([c.counts for c in partials]).astype(np.int64)
    owner = np.repeat(np.arange(len(partials)), nnz)
    repeats = np.where(expanded[owner], counts, 1)
    present = np.concatenate([c.index for c in partials]).astype(np.int64)
    present = np.repeat(present + np.repeat(flat_base, nnz), repeats)
    column = np.searchsorted(col_starts, present, side="right") - 1
    local = present - col_starts[column]
    # Bin indices ascend within a column: store the first, then the gaps (one byte mostly).
    gaps = np.diff(local, prepend=0)
    first = np.ones(present.size, dtype=np.bool_)
    first[1:] = column[1:] != column[:-1]
    gaps[first] = local[first]
    sizes = np.bincount(column, minlength=n_bins.size)
    positions = np.bincount(owner, weights=repeats, minlength=len(partials)).astype(np.int64)
    kept = ~expanded[owner]
    tallies = np.concatenate([c.tallies.ravel() for c in partials])
    floats = np.concatenate([c.floats.ravel() for c in partials]).astype("<f8").tobytes()
    streams = (
        _split_varints(sizes, widths),
        _split_varints(gaps, positions),
        _split_varints(counts[kept], np.where(expanded, 0, nnz)),
        _split_varints(tallies, 3 * widths),
    )
    float_bounds = np.concatenate(([0], np.cumsum(48 * widths))).tolist()
    return [
        (b"".join((*(stream[i] for stream in streams), floats[lo:hi])), bool(expanded[i]))
        for i, (lo, hi) in enumerate(itertools.pairwise(float_bounds))
    ]


def _split_varints(values: npt.NDArray[Any], segments: npt.NDArray[np.int64]) -> list[bytes]:
    """Encode ``values`` as varints and cut the bytes into ``segments`` (counts of values)."""
    encoded, widths = _varints(np.asarray(values, dtype=np.uint64))
    value_bounds = np.concatenate(([0], np.cumsum(segments)))
    byte_bounds = np.concatenate(([0], np.cumsum(widths)))[value_bounds].tolist()
    data = encoded.tobytes()
    return [data[lo:hi] for lo, hi in itertools.pairwise(byte_bounds)]


def encode_varints(values: UIntArray) -> bytes:
    """Return ``values`` (non-negative integers) as LEB128 varints: 7 bits a byte, low first."""
    return _varints(np.asarray(values, dtype=np.uint64))[0].tobytes()


def _varints(values: UIntArray) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The varint bytes of ``values`` and how many bytes each value took."""
    widths = np.ones(values.size, dtype=np.int64)
    top = int(values.max()) if values.size else 0
    if top < 0x80:  # the usual case: one byte each
        return values.astype(np.uint8), widths
    for k in range(1, (top.bit_length() + 6) // 7):
        widths += values >= np.uint64(1) << np.uint64(7 * k)
    ends = np.cumsum(widths)
    starts = ends - widths
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    more = np.uint8(0x80)
    # Every value has a first byte; only the few large ones have more.
    out[starts] = (values & np.uint64(0x7F)).astype(np.uint8) | np.where(widths > 1, more, 0)
    longer = np.flatnonzero(widths > 1)
    for k in range(1, int(widths.max())):
        longer = longer[widths[longer] > k]
        byte = (values[longer] >> np.uint64(7 * k)) & np.uint64(0x7F)
        out[starts[longer] + k] = byte.astype(np.uint8) | np.where(widths[longer] > k + 1, more, 0)
    return out, widths


def decode_varints(buffer: bytes, offset: int, count: int) -> tuple[UIntArray, int]:
    """Return ``count`` varints of :func:`encode_varints` read from ``buffer[offset:]``.

    Returns ``(values, offset after the last one)``; raises
    :class:`~detectors.errors.IncompatibleSketchError` if the buffer holds fewer.
    """
    if count == 0:
        return np.zeros(0, dtype=np.uint64), offset
    data = np.frombuffer(buffer, dtype=np.uint8, offset=offset)
    ends = np.flatnonzero(data < 0x80)[:count]
    if ends.size < count:
        raise IncompatibleSketchError("a stored partial is truncated (too few varints)")
    starts = np.concatenate(([0], ends[:-1] + 1))
    widths = ends - starts + 1
    if int(widths.max()) > 10:
        raise IncompatibleSketchError("a stored partial holds a varint longer than 64 bits")
    values = np.zeros(count, dtype=np.uint64)
    for k in range(int(widths.max())):
        longer = widths > k
        chunk = data[starts[longer] + k].astype(np.uint64) & np.uint64(0x7F)
        values[longer] |= chunk << np.uint64(7 * k)
    return values, offset + int(ends[-1]) + 1


def partial_from_bytes(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> PartialPayload:
    """Return the :class:`PartialPayload` of :func:`sketch_to_bytes` output (format 1 or 2).

    ``profile_for`` returns the profile of a version (a mapping's
    ``__getitem__`` or a loader); the sketch is rebuilt on that profile's
    specs. The payload is parsed once.
    """
    if payload[: len(MAGIC)] == MAGIC:
        return _from_format_2(payload, profile_for)
    data = orjson.loads(payload)  # format 1: JSON
    version = int(data["profile_version"])
    attribution = data.get(ATTRIBUTION_KEY)
    performance = data.get(PERFORMANCE_KEY)
    return PartialPayload(
        version,
        WindowSketch.from_dict(profile_for(version).specs, data["sketch"]),
        None if attribution is None else AttributionSummary.from_dict(attribution),
        None if performance is None else CBPESketch.from_dict(performance),
    )


def _from_format_2(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> PartialPayload:
    try:
        raw = zlib.decompress(payload[len(MAGIC) :])
    except zlib.error as exc:
        raise IncompatibleSketchError(f"a stored partial is not readable: {exc}") from exc
    size = int.from_bytes(raw[:4], "little")
    header = orjson.loads(raw[4 : 4 + size])
    check_version(header, PARTIAL_FORMAT, PARTIAL_FORMAT_VERSION)
    version = int(header["profile_version"])
    specs = profile_for(version).specs
    numeric = _numeric_sketches(specs, header, raw, 4 + size)
    features: dict[str, FeatureSketch] = {}
    for name in _order(specs, header):
        if name in numeric:
            features[name] = numeric[name]
            continue
        spec = specs.get(name)
        if not isinstance(spec, CategoricalSpec):
            raise IncompatibleSketchError(f"feature {name!r} is not categorical in its profile")
        features[name] = CategoricalSketch.from_dict(spec, header["categorical"][name])
    sample = row_sample_from_dict(header.get("sample"), specs)
    attribution = header.get(ATTRIBUTION_KEY)
    performance = header.get(PERFORMANCE_KEY)
    return PartialPayload(
        version,
        WindowSketch(rows=int(header["rows"]), features=features, sample=sample),
        None if attribution is None else AttributionSummary.from_dict(attribution),
        None if performance is None else CBPESketch.from_dict(performance),
    )


def _order(specs: Mapping[str, FeatureSpec], header: Mapping[str, Any]) -> list[str]:
    """The payload's feature order: as written, else every feature of the profile."""
    order = header.get("order")
    return list(specs) if order is None else list(order)


def _numeric_sketches(
    specs: Mapping[str, FeatureSpec], header: Mapping[str, Any], raw: bytes, offset: int
) -> dict[str, NumericSketch]:
    """Rebuild the numeric sketches of a format-2 payload from its binary block."""
    categorical = header["categorical"]
    names = [name for name in _order(specs, header) if name not in categorical]
    if not names:
        return {}
    n = len(names)
    kinds = [specs.get(name) for name in names]
    numeric = [spec for spec in kinds if isinstance(spec, NumericSpec)]
    if len(numeric) != n or sum(spec.n_bins for spec in numeric) != header["bins"]:
        raise IncompatibleSketchError(
            "a stored partial's numeric columns do not match its profile's numeric features"
        )
    expanded = bool(header.get("expanded", False))
    sizes, offset = decode_varints(raw, offset, n)
    total = int(sizes.sum())
    gaps, offset = decode_varints(raw, offset, total)
    counts = None
    if not expanded:
        counts, offset = decode_varints(raw, offset, total)
    tallies, offset = decode_varints(raw, offset, 3 * n)
    if len(raw) - offset != 48 * n:
        raise IncompatibleSketchError("a stored partial's numeric block has the wrong length")
    floats = np.frombuffer(raw, dtype="<f8", offset=offset).reshape(n, 6)
    bounds = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    out: dict[str, NumericSketch] = {}
    for i, (name, spec) in enumerate(zip(names, numeric, strict=True)):
        n_bins = spec.n_bins
        lo, hi = bounds[i], bounds[i + 1]
        where = np.cumsum(gaps[lo:hi].astype(np.int64))
        if where.size and int(where[-1]) >= n_bins:
            raise IncompatibleSketchError(f"sketch of {name!r} has a bin beyond its spec's")
        if counts is None:  # one position per value
            dense = np.bincount(where, minlength=n_bins).astype(np.int64)
        else:
            if where.size > 1 and int(np.diff(where).min()) < 1:
                raise IncompatibleSketchError(f"sketch of {name!r} repeats a bin")
            dense = np.zeros(n_bins, dtype=np.int64)
            dense[where] = counts[lo:hi].astype(np.int64)
        low, high, total_, total_sq, under, over = (float(v) for v in floats[i])
        out[name] = NumericSketch(
            spec=spec,
            counts=dense,
            missing=int(tallies[3 * i]),
            infinite=int(tallies[3 * i + 1]),
            invalid=int(tallies[3 * i + 2]),
            min=low,
            max=high,
            total=total_,
            total_sq=total_sq,
            under_sum=under,
            over_sum=over,
        )
    return out


def sketch_from_bytes(
    payload: bytes, profile_for: Callable[[int], ReferenceProfile]
) -> tuple[int, WindowSketch]:
    """Return ``(profile_version, sketch)`` from :func:`sketch_to_bytes` output."""
    partial = partial_from_bytes(payload, profile_for)
    return partial.profile_version, partial.sketch

"""Reference profiles: the bins, categories and sketch of a model's reference data.

A profile is built once from the reference (usually the training set), stored
by the service per model and version, and every window is sketched on its bins
and compared with it. It is the only thing about the reference that the
service keeps: its size is bounded by ``bins`` and ``max_categories`` per
feature, whatever the reference's row count. With ``sample=True`` it also keeps
a bounded sample of the reference's rows (``sample_size`` of them) for the
multivariate methods of :mod:`detectors.multivariate`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from detectors._arrays import FloatArray, label_counts, numeric_values
from detectors.errors import InvalidParameterError, check_version
from detectors.kinds import DEFAULT_MAX_INTEGER_LEVELS, ColumnKind, infer_kinds
from detectors.sample import (
    DEFAULT_REFERENCE_SAMPLE_SIZE,
    DEFAULT_SAMPLE_SIZE,
    Ids,
    RowSample,
)
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    FeatureSketch,
    FeatureSpec,
    NumericSketch,
    NumericSpec,
    WindowSketch,
    spec_from_dict,
)

#: The reference's row sample lives in its sketch (sketch format 2), so this format is unchanged.
PROFILE_FORMAT_VERSION = 1
#: Default number of quantile bins per numeric feature (a multiple of :data:`COARSE_BINS`).
DEFAULT_BINS = 1000
#: Bins of PSI, Jensen-Shannon and Hellinger on numeric features: reference deciles.
COARSE_BINS = 10
#: Default number of reference categories kept by name; rarer ones count as unseen.
DEFAULT_MAX_CATEGORIES = 200


def quantile_indices(n: int, levels: int) -> np.ndarray:
    """Return the sorted-array positions of the quantiles ``k / levels``, ``k = 0..levels``.

    Lower interpolation in exact integer arithmetic, ``floor(k * (n - 1) / levels)``,
    so that coarse levels land exactly on fine ones.

    >>> quantile_indices(11, 10).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    """
    return (np.arange(levels + 1, dtype=np.int64) * (n - 1)) // levels


def numeric_spec(name: str, ordered: FloatArray, bins: int = DEFAULT_BINS) -> NumericSpec:
    """Return the quantile bins of sorted finite reference values ``ordered``."""
    if ordered.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return NumericSpec(name=name, edges=empty, coarse_edges=empty)
    edges = np.unique(ordered[quantile_indices(ordered.size, bins)])
    # The first bin, (-inf, below], then holds only values under the reference's
    # minimum: a move below it stays visible even when the minimum is a point mass.
    below = np.nextafter(edges[0], -np.inf)
    coarse = np.unique(ordered[quantile_indices(ordered.size, COARSE_BINS)[1:-1]])
    return NumericSpec(name=name, edges=np.concatenate(([below], edges)), coarse_edges=coarse)


def categorical_spec(
    name: str, counts: Mapping[str, int], max_categories: int = DEFAULT_MAX_CATEGORIES
) -> CategoricalSpec:
    """Return the ``max_categories`` most frequent labels of ``counts`` (ties by label)."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return CategoricalSpec(
        name=name, categories=tuple(label for label, _ in ranked[:max_categories])
    )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class ReferenceProfile:
    """A reference data set reduced to feature specs and their sketch.

    Build with :meth:`from_frame`; sketch new data on the same bins with
    :meth:`sketch`; store with :meth:`to_bytes` / :meth:`from_bytes`.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    >>> profile = ReferenceProfile.from_frame(ref)
    >>> {name: spec.kind.value for name, spec in profile.specs.items()}
    {'x': 'numeric', 'c': 'categorical'}
    >>> profile.reference.rows
    500
    """

    specs: Mapping[str, FeatureSpec]
    reference: WindowSketch

    format: ClassVar[str] = "driftline.profile"

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        kinds: Mapping[str, str | ColumnKind] | None = None,
        *,
        columns: Iterable[str] | None = None,
        bins: int = DEFAULT_BINS,
        max_categories: int = DEFAULT_MAX_CATEGORIES,
        max_integer_levels: int = DEFAULT_MAX_INTEGER_LEVELS,
        threads: int = 1,
        sample: bool = False,
        sample_size: int = DEFAULT_REFERENCE_SAMPLE_SIZE,
        keys: Ids | None = None,
    ) -> ReferenceProfile:
        """Return the profile of ``frame``.

        ``kinds`` overrides inferred column kinds; ``columns`` restricts the
        profile to those columns (default: every monitored column). ``bins``
        must be a positive multiple of 10. ``threads`` > 1 processes columns in
        parallel (numpy releases the GIL while sorting); the default, 1, is
        fastest when other work shares the cores, as in the service.
        ``sample=True`` also keeps a sample of ``sample_size`` reference rows
        (:attr:`sample`), keyed by ``keys`` (one id per row) or by default by
        :func:`~detectors.sample.row_keys`.
        """
        if bins < COARSE_BINS or bins % COARSE_BINS:
            raise InvalidParameterError("bins", f"a positive multiple of {COARSE_BINS}", bins)
        if max_categories < 1:
            raise InvalidParameterError("max_categories", "at least 1", max_categories)
        selected = frame if columns is None else frame[list(columns)]
        if not all(isinstance(c, str) for c in selected.columns):
            selected = selected.rename(columns=str)
        resolved = infer_kinds(selected, kinds, max_integer_levels)

        def build(name: str) -> tuple[FeatureSpec, FeatureSketch]:
            series = _column(selected, name)
            if resolved[name] is ColumnKind.NUMERIC:
                finite, missing, infinite, invalid = numeric_values(series)
                ordered = np.sort(finite)
                spec = numeric_spec(name, ordered, bins)
                sketch = NumericSketch.from_sorted(spec, ordered, missing, infinite, invalid)
                return spec, sketch
            counts, missing = label_counts(series)
            cat_spec = categorical_spec(name, counts, max_categories)
            return cat_spec, CategoricalSketch.from_counts(cat_spec, counts, missing)

        numeric = [name for name, kind in resolved.items() if kind is ColumnKind.NUMERIC]
        built = [
            (name, spec, sketch)
            for name, (spec, sketch) in zip(
                resolved, _map_columns(build, list(resolved), threads, numeric), strict=True
            )
            # A text column without a single value has nothing to compare with.
            if not (isinstance(sketch, CategoricalSketch) and sketch.count == 0)
        ]
        specs = {name: spec for name, spec, _ in built}
        sketches = {name: sketch for name, _, sketch in built}
        rows = (
            RowSample.from_frame(selected, specs, size=sample_size, keys=keys) if sample else None
        )
        reference = WindowSketch(rows=len(frame), features=sketches, sample=rows)
        return cls(specs=specs, reference=reference)

    def sketch(
        self,
        frame: pd.DataFrame,
        *,
        threads: int = 1,
        sample: bool = False,
        sample_size: int = DEFAULT_SAMPLE_SIZE,
        keys: Ids | None = None,
    ) -> WindowSketch:
        """Return the sketch of ``frame`` on this profile's bins.

        Every profiled column must be present in ``frame`` (extra columns are
        ignored); see :meth:`missing_columns`. ``sample=True`` also keeps a
        sample of ``sample_size`` rows, keyed by ``keys`` (one id per row, such
        as request ids) or by default by :func:`~detectors.sample.row_keys`;
        it is off by default because hashing every row costs about as much as
        the sketch itself.
        """
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.rename(columns=str)
        absent = self.missing_columns(frame.columns)
        if absent:
            raise KeyError(f"columns missing from the data: {', '.join(absent)}")
        names = list(self.specs)
        numeric = [name for name, spec in self.specs.items() if isinstance(spec, NumericSpec)]
        built = _map_columns(
            lambda name: self.specs[name].sketch(_column(frame, name)), names, threads, numeric
        )
        rows = (
            RowSample.from_frame(frame, self.specs, size=sample_size, keys=keys) if sample else None
        )
        return WindowSketch(
            rows=len(frame), features=dict(zip(names, built, strict=True)), sample=rows
        )

    def empty_sketch(
        self, *, sample: bool = False, sample_size: int = DEFAULT_SAMPLE_SIZE
    ) -> WindowSketch:
        """Return the sketch of zero rows (the identity of :meth:`WindowSketch.merge`)."""
        empty = pd.DataFrame({name: pd.Series([], dtype=object) for name in self.specs})
        return self.sketch(empty, sample=sample, sample_size=sample_size)

    @property
    def sample(self) -> RowSample | None:
        """The sample of the reference's rows (``None`` unless built with ``sample=True``)."""
        return self.reference.sample

    def missing_columns(self, columns: Iterable[object]) -> list[str]:
        """Return the profiled feature names that are not among ``columns``."""
        present = {str(c) for c in columns}
        return [name for name in self.specs if name not in present]

    @property
    def kinds(self) -> dict[str, ColumnKind]:
        """Kind of every profiled feature."""
        return {name: spec.kind for name, spec in self.specs.items()}

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict of the profile."""
        return {
            "format": self.format,
            "version": PROFILE_FORMAT_VERSION,
            "specs": [spec.to_dict() for spec in self.specs.values()],
            "reference": self.reference.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, PROFILE_FORMAT_VERSION)
        specs = {spec.name: spec for spec in map(spec_from_dict, data["specs"])}
        return cls(specs=specs, reference=WindowSketch.from_dict(specs, data["reference"]))

    def to_bytes(self) -> bytes:
        """Return the profile as UTF-8 JSON bytes."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_bytes` output."""
        return cls.from_dict(json.loads(payload))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceProfile):
            return NotImplemented
        return dict(self.specs) == dict(other.specs) and self.reference == other.reference

    __hash__ = None  # type: ignore[assignment]


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """Return one column as a Series (a duplicated column name would give a frame)."""
    column = frame[name]
    if isinstance(column, pd.DataFrame):
        raise KeyError(f"column {name!r} appears more than once in the data")
    return column


def _map_columns(
    work: Any, names: list[str], threads: int, parallel: Iterable[str] = ()
) -> list[Any]:
    """Apply ``work`` to every column name; return the results in ``names`` order.

    With ``threads`` > 1 the ``parallel`` columns (numeric ones: their sort
    releases the GIL) run on a pool while this thread does the others
    (categorical ones: hashing Python objects holds the GIL and gains nothing
    from more threads), so the two kinds of work overlap.
    """
    pooled = [name for name in names if name in set(parallel)]
    if threads <= 1 or not pooled:
        return [work(name) for name in names]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {name: pool.submit(work, name) for name in pooled}
        here = {name: work(name) for name in names if name not in futures}
        return [futures[name].result() if name in futures else here[name] for name in names]

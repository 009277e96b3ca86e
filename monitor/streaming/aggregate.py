"""In-memory window aggregation per partition: the state a checkpoint writes.

Each topic partition is consumed by one process at a time, so the state of a
partition -- the next offset, the largest event time seen, and one partial
sketch per (model, window) -- is a pure function of the records before that
offset. :class:`PartitionState` keeps it; :meth:`PartitionState.rows`
returns what to store, in one transaction, at a checkpoint.

Lateness is decided per partition and per record, in partition order: a
record is late for a window when that window ended at or before the
partition's largest event time so far minus the model's allowed lateness.
That makes the decision a function of the stream alone (not of timing or
batch sizes), so a restarted process reproduces it exactly.

Each window is sketched on the profile version in force at its start
(:meth:`monitor.analyses.model.ModelRuntimes.at`): a record of several hopping
windows may be sketched on a different version in each.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from detectors.attribution import AttributionSummary
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.sample import UInt64Array
from detectors.sketch import CategoricalSketch, NumericSketch, WindowSketch
from monitor.analyses.attribution import records_attribution
from monitor.analyses.model import ModelRuntime, as_runtimes
from monitor.records import PredictionRecord
from monitor.store.rows import PartialRow, ProgressRow
from monitor.streaming.partials import (
    NumericColumns,
    PartialParts,
    merge_optional,
    partial_from_bytes,
    parts_to_bytes,
)
from monitor.streaming.sketching import (
    NumericAccumulator,
    NumericLayout,
    accumulate_numeric,
    fold_all,
    numeric_layout,
    record_keys,
    score_sketch,
    sketch_records,
)
from monitor.windows import WindowSpec

WindowKey = tuple[str, float]  # (model, window_start)


class Partial:
    """One model window's partial sketch in one partition, and the profile it is binned on.

    ``attribution`` sums the records' ``explanations`` for models whose
    attribution comes from them, ``performance`` is the CBPE sketch of their
    scores for models with a performance estimator (None otherwise).

    For a model without a row sample the numeric columns live in a
    :class:`~monitor.streaming.sketching.NumericAccumulator` (count arrays
    updated in place, a poll at a time) and only the other columns in a
    :class:`~detectors.sketch.WindowSketch`; :attr:`sketch` puts them together
    when it is read (at a checkpoint). Otherwise the whole sketch is kept.
    """

    __slots__ = (
        "_built",
        "_numeric",
        "_rest",
        "attribution",
        "performance",
        "profile_version",
        "window_end",
    )

    def __init__(
        self,
        window_end: float,
        profile_version: int,
        sketch: WindowSketch,
        attribution: AttributionSummary | None = None,
        performance: CBPESketch | None = None,
    ) -> None:
        self.window_end = window_end
        self.profile_version = profile_version
        self.attribution = attribution
        self.performance = performance
        self._numeric: NumericAccumulator | None = None
        self._built: WindowSketch | None = sketch
        self._rest = sketch

    @classmethod
    def accumulating(
        cls, window_end: float, profile_version: int, layout: NumericLayout, rest: WindowSketch
    ) -> Partial:
        """Return an empty partial whose numeric columns (``layout``) go to an accumulator.

        ``rest`` is the empty sketch of the other columns.
        """
        partial = cls(window_end, profile_version, rest)
        partial._numeric = NumericAccumulator.empty(layout)
        partial._built = None
        return partial

    def accumulate(self, layout: NumericLayout) -> NumericAccumulator:
        """Move the numeric columns into an accumulator (once); return it."""
        if self._numeric is None:
            sketch = self.sketch
            names = set(layout.names)
            self._numeric = NumericAccumulator.of(layout, dict(sketch.features))
            rest = {n: f for n, f in sketch.features.items() if n not in names}
            self._rest = WindowSketch(rows=sketch.rows, features=rest, sample=sketch.sample)
        return self._numeric

    @property
    def numeric(self) -> NumericAccumulator | None:
        """The accumulator of the numeric columns (None: they are in the kept sketch)."""
        return self._numeric

    @property
    def sketch(self) -> WindowSketch:
        """The partial's whole :class:`~detectors.sketch.WindowSketch`."""
        if self._built is None:
            assert self._numeric is not None  # only an accumulating partial clears _built
            numeric = self._numeric.sketches()
            rest = self._rest.features
            order = self._numeric.layout.order
            self._built = WindowSketch(
                rows=self._rest.rows,
                features={n: numeric[n] if n in numeric else rest[n] for n in order},
                sample=self._rest.sample,
            )
        return self._built

    @property
    def rows(self) -> int:
        """How many records the partial holds."""
        return self._rest.rows

    def parts(self) -> PartialParts:
        """Return the parts of the stored payload (:func:`~.partials.parts_to_bytes` writes them).

        Fold the accumulator first (:func:`~monitor.streaming.sketching.fold_all`).
        """
        rest = self._rest
        whole_profile = False
        if self._numeric is None:
            numeric = {n: f for n, f in rest.features.items() if isinstance(f, NumericSketch)}
            columns = NumericColumns.of(numeric)
            order: Sequence[str] = list(rest.features)
        else:
            whole_profile = True  # the layout's order is every feature of the profile
            acc = self._numeric
            acc.fold()
            layout = acc.layout
            columns = NumericColumns(
                names=layout.names,
                n_bins=layout.n_bins,
                index=acc.index,
                counts=acc.counts,
                tallies=acc.tallies,
                floats=acc.floats,
            )
            order = layout.order
        others = {n: f for n, f in rest.features.items() if isinstance(f, CategoricalSketch)}
        return PartialParts(
            self.profile_version,
            rest.rows,
            order,
            columns,
            others,
            rest.sample,
            self.attribution,
            self.performance,
            profile_order=whole_profile and len(order) == len(columns.names) + len(others),
        )

    def to_bytes(self) -> bytes:
        """Return the stored payload (:mod:`monitor.streaming.partials`, format 2)."""
        return parts_to_bytes([self.parts()])[0]

    def merge(self, sketch: WindowSketch, extras: Extras) -> None:
        """Merge the sketch and extras of more rows (without the accumulated numeric columns)."""
        rest = self._rest
        no_samples = sketch.sample is None and rest.sample is None
        if no_samples and not sketch.features and not rest.features:
            # Only numeric columns, all accumulated: the rest is a row count.
            self._rest = WindowSketch(rows=rest.rows + sketch.rows, features=rest.features)
        else:
            self._rest = rest.merge(sketch)
        self._built = None if self._numeric is not None else self._rest
        self.attribution = merge_optional(self.attribution, extras.attribution)
        self.performance = merge_optional(self.performance, extras.performance)


class Extras(NamedTuple):
    """What a batch adds to a partial besides its sketch (see :class:`Partial`)."""

    attribution: AttributionSummary | None
    performance: CBPESketch | None


@dataclass(slots=True)
class AddResult:
    """What one :meth:`PartitionState.add` call did, per model."""

    counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    late: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _assign_windows(
    specs: Mapping[str, WindowSpec],
    records: Sequence[PredictionRecord],
    high: float | None,
    outcome: AddResult,
) -> tuple[list[tuple[tuple[str, float, float], npt.NDArray[np.intp]]], float | None]:
    """Group ``records`` by (model, window start, window end) among their live windows.

    Returns the groups -- each with the ascending positions of its records in
    ``records`` -- in the order a record-by-record pass would first meet them,
    and the partition's largest event time after the records. Counts each
    record as counted or late in ``outcome``. Vectorised over the batch: the
    watermark is a running maximum, and ``WindowSpec.windows_for`` is called once
    per run of one model's records in one window step (per record only where
    the step's two ends disagree, which exact arithmetic never causes). A batch
    of fewer than :data:`_RUN_RECORDS` records per model goes through
    :func:`_assign_by_record` instead (same result, cheaper for a few records).
    """
    n = len(records)
    if n == 0:
        return [], high
    times = np.fromiter([r.event_time for r in records], dtype=np.float64, count=n)
    models = [r.model for r in records]
    names = list(dict.fromkeys(models))
    if not np.isfinite(times).all():  # what windows_for raises, record by record
        for r in records:
            specs[r.model].windows_for(r.event_time)
    if len(names) == 1:
        code = np.zeros(n, dtype=np.intp)
    else:
        where = {name: i for i, name in enumerate(names)}
        code = np.fromiter(map(where.__getitem__, models), dtype=np.intp, count=n)
    if n < _RUN_RECORDS * len(names):
        # A few records per model (a fleet's tail): numpy's fixed cost per run of one model's
        # records would exceed the record-by-record rule's per-record cost.
        return _assign_by_record(specs, records, high, outcome)
    model_specs = [specs[name] for name in names]
    steps = np.array([s.step_s for s in model_specs], dtype=np.float64)
    lateness = np.array([s.allowed_lateness_s for s in model_specs], dtype=np.float64)
    running = np.maximum.accumulate(times)
    if high is not None:
        np.maximum(running, high, out=running)
    watermark = running - lateness[code]
    step_of = np.floor(times / steps[code])
    order = np.lexsort((step_of, code))  # stable: record order within a (model, step) run
    sorted_code, sorted_step = code[order], step_of[order]
    cuts = np.flatnonzero(
        (sorted_code[1:] != sorted_code[:-1]) | (sorted_step[1:] != sorted_step[:-1])
    )
    bounds = [0, *(cuts + 1).tolist(), n]
    members: dict[tuple[str, float, float], list[npt.NDArray[np.intp]]] = {}
    counted = np.zeros(len(names), dtype=np.int64)
    late = np.zeros(len(names), dtype=np.int64)
    for lo, hi in pairwise(bounds):
        run = order[lo:hi]
        model_index = int(sorted_code[lo])
        spec = model_specs[model_index]
        run_times = times[run]
        first, last = float(run_times.min()), float(run_times.max())
        containing = spec.windows_for(first)
        # No window fits strictly between first and last when they are less than a window
        # apart (a computed difference below size_s means the exact one is), so records
        # between two ends with equal windows have those windows.
        if last == first or (last - first < spec.size_s and spec.windows_for(last) == containing):
            parts = [(run, containing)]
        else:  # rounding at a window edge: each record on its own
            parts = [(run[i : i + 1], spec.windows_for(float(t))) for i, t in enumerate(run_times)]
        for part, windows in parts:
            marks = watermark[part]
            is_late = marks >= windows[-1][1]  # the newest window has the latest end
            late[model_index] += int(is_late.sum())
            counted[model_index] += part.size - int(is_late.sum())
            for start, end in windows:
                live = part[end > marks]
                if live.size:
                    members.setdefault((names[model_index], start, end), []).append(live)
    for i, name in enumerate(names):
        if counted[i]:
            outcome.counted[name] += int(counted[i])
        if late[i]:
            outcome.late[name] += int(late[i])
    groups = []
    for key, parts_of in members.items():
        joined = parts_of[0] if len(parts_of) == 1 else np.sort(np.concatenate(parts_of))
        groups.append((key, joined))
    # A record-by-record pass meets a group at its first record, and a record's windows
    # oldest first.
    groups.sort(key=lambda g: (int(g[1][0]), g[0][1]))
    return groups, float(running[-1])


#: Records per model of a batch below which :func:`_assign_windows` goes record by record.
_RUN_RECORDS = 16


def _assign_by_record(
    specs: Mapping[str, WindowSpec],
    records: Sequence[PredictionRecord],
    high: float | None,
    outcome: AddResult,
) -> tuple[list[tuple[tuple[str, float, float], npt.NDArray[np.intp]]], float | None]:
    """Return what :func:`_assign_windows` returns, deciding record by record in partition order."""
    groups: dict[tuple[str, float, float], list[int]] = defaultdict(list)
    # The windows containing t are the same for every t in [newest start, + step):
    # a model's records in partition order mostly hit its previous record's windows.
    cache: dict[str, tuple[float, float, list[tuple[float, float]]]] = {}
    for index, record in enumerate(records):
        model, t = record.model, record.event_time
        spec = specs[model]
        low, top, containing = cache.get(model, (0.0, -1.0, []))
        if not low <= t < top:
            containing = spec.windows_for(t)
            low = containing[-1][0]
            cache[model] = (low, low + spec.step_s, containing)
        if high is None or t > high:
            high = t
        watermark = high - spec.allowed_lateness_s
        live = [w for w in containing if w[1] > watermark]
        if not live:
            outcome.late[model] += 1
            continue
        outcome.counted[model] += 1
        for start, end in live:
            groups[(model, start, end)].append(index)
    return [(key, np.array(members, dtype=np.intp)) for key, members in groups.items()], high


@dataclass(slots=True)
class PartitionState:
    """Everything the service has aggregated from one topic partition."""

    topic: str
    partition: int
    next_offset: int | None = None
    max_event_time: float | None = None
    last_record_at: float | None = None
    partials: dict[WindowKey, Partial] = field(default_factory=dict)
    dirty: set[WindowKey] = field(default_factory=set)
    progress_dirty: bool = True

    def add(
        self,
        runtimes: Mapping[str, ModelRuntime],
        records: Sequence[PredictionRecord],
        next_offset: int,
        now: float,
        offsets: Sequence[int] | None = None,
    ) -> AddResult:
        """Aggregate valid, routed ``records`` (in partition order); advance to ``next_offset``.

        ``runtimes`` is a :class:`~monitor.analyses.model.ModelRuntimes` (each
        window on the version in force at its start) or a plain mapping (one
        version per model).

        ``offsets`` are the records' offsets in the partition: they key the row
        samples of models with multivariate drift (:func:`monitor.streaming.sketching.record_keys`).
        Without them the records are taken to be the ones just before
        ``next_offset``, which holds only when none was skipped as invalid.
        """
        outcome = AddResult()
        versions = as_runtimes(runtimes)
        specs = {name: runtime.window for name, runtime in versions.items()}
        groups, high = _assign_windows(specs, records, self.max_event_time, outcome)
        keys: UInt64Array | None = None
        numeric: list[tuple[ModelRuntime, NumericAccumulator, Sequence[PredictionRecord]]] = []
        for (model, start, end), members in groups:
            runtime = versions.at(model, start)
            key = (model, start)
            known = self.partials.get(key)
            if known is not None and known.profile_version != runtime.profile_version:
                # A partial binned on an older profile cannot take new rows; its window keeps
                # the old rows (evaluation reads each partial with its own profile version).
                continue
            chosen = (
                records if members.size == len(records) else [records[i] for i in members.tolist()]
            )
            extras = Extras(
                records_attribution(chosen) if runtime.explained_by_records else None,
                score_sketch(runtime, chosen) if runtime.estimates_performance else None,
            )
            if runtime.sample_size is not None:
                if keys is None:
                    if offsets is None:
                        offsets = range(next_offset - len(records), next_offset)
                    keys = record_keys(self.partition, offsets)
                bound = self._sample_bound(runtime, start)
                sketch = sketch_records(runtime, chosen, keys=keys[members], sample_bound=bound)
                if known is None:
                    self.partials[key] = Partial(end, runtime.profile_version, sketch, *extras)
                else:
                    known.merge(sketch, extras)
            else:
                layout = numeric_layout(runtime)
                only_numeric = len(layout.names) == len(runtime.profile.specs)
                if only_numeric:
                    sketch = WindowSketch(rows=len(chosen), features={})
                else:
                    sketch = sketch_records(runtime, chosen, numeric=False)
                if known is None:
                    rest = (
                        WindowSketch(rows=0, features={})
                        if only_numeric
                        else sketch_records(runtime, [], numeric=False)
                    )
                    known = Partial.accumulating(end, runtime.profile_version, layout, rest)
                    self.partials[key] = known
                numeric.append((runtime, known.accumulate(layout), chosen))
                known.merge(sketch, extras)
            self.dirty.add(key)
        accumulate_numeric(numeric)
        self.max_event_time = high
        self.next_offset = next_offset
        if records:
            self.last_record_at = now
        self.progress_dirty = True
        return outcome

    def skip(self, next_offset: int) -> None:
        """Advance past records that carried no valid prediction (invalid or labels)."""
        self.next_offset = next_offset
        self.progress_dirty = True

    def _sample_bound(self, runtime: ModelRuntime, start: float) -> np.uint64 | None:
        """The bound of the row sample the window's next rows merge into (None: keep all)."""
        known = self.partials.get((runtime.name, start))
        if known is None or known.profile_version != runtime.profile_version:
            return None
        return None if known.sketch.sample is None else known.sketch.sample.bound

    def rows(self) -> tuple[list[PartialRow], list[ProgressRow]]:
        """Return the dirty partials and this partition's progress, for one checkpoint."""
        keys = sorted(self.dirty)
        chosen = [self.partials[key] for key in keys]
        fold_all([p.numeric for p in chosen if p.numeric is not None])
        payloads = parts_to_bytes([p.parts() for p in chosen])
        partials = [
            PartialRow(
                model=model,
                window_start=start,
                window_end=partial.window_end,
                topic=self.topic,
                partition=self.partition,
                sketch=payload,
                rows=partial.rows,
            )
            for (model, start), partial, payload in zip(keys, chosen, payloads, strict=True)
        ]
        row = self.progress_row()
        progress = [row] if self.progress_dirty and row is not None else []
        return partials, progress

    def progress_row(self) -> ProgressRow | None:
        """Return this partition's progress as stored (None before its first offset)."""
        if self.next_offset is None:
            return None
        return ProgressRow(
            topic=self.topic,
            partition=self.partition,
            next_offset=self.next_offset,
            max_event_time=self.max_event_time,
            last_record_at=self.last_record_at,
        )

    def mark_clean(self) -> None:
        """Record that :meth:`rows` was committed."""
        self.dirty.clear()
        self.progress_dirty = False

    def forget_before(self, model: str, window_end: float) -> None:
        """Drop in-memory partials of ``model`` that ended at or before ``window_end``.

        Called for windows already evaluated: their stored rows stay, memory is freed.
        """
        for key in [k for k, p in self.partials.items() if k[0] == model]:
            if self.partials[key].window_end <= window_end and key not in self.dirty:
                del self.partials[key]

    def forget_closed(self, runtimes: Mapping[str, ModelRuntime]) -> int:
        """Drop clean partials of windows that can no longer take a record; return how many.

        A window that ended at or before this partition's largest event time minus
        its model's allowed lateness only gets late records from now on (the largest
        event time never decreases), and a clean partial is already stored, where
        the evaluator reads it. Without this, memory grows with every window.
        """
        if self.max_event_time is None:
            return 0
        # One pass over the partials (not one per model): hundreds of models share a partition.
        lateness = {name: runtime.window.allowed_lateness_s for name, runtime in runtimes.items()}
        closed = [
            key
            for key, partial in self.partials.items()
            if key[0] in lateness
            and partial.window_end <= self.max_event_time - lateness[key[0]]
            and key not in self.dirty
        ]
        for key in closed:
            del self.partials[key]
        return len(closed)

    @classmethod
    def restore(
        cls,
        topic: str,
        partition: int,
        progress: ProgressRow | None,
        partials: Iterable[PartialRow],
        profiles: Mapping[str, Mapping[int, ReferenceProfile]],
    ) -> PartitionState:
        """Rebuild a partition's state from what the last checkpoint stored."""
        state = cls(topic=topic, partition=partition)
        if progress is not None:
            state.next_offset = progress.next_offset
            state.max_event_time = progress.max_event_time
            state.last_record_at = progress.last_record_at
            state.progress_dirty = False
        for row in partials:
            versions = profiles.get(row.model)
            if versions is None:
                continue  # a model no longer configured
            stored = partial_from_bytes(row.sketch, versions.__getitem__)
            state.partials[(row.model, row.window_start)] = Partial(
                row.window_end,
                stored.profile_version,
                stored.sketch,
                stored.attribution,
                stored.performance,
            )
        return state

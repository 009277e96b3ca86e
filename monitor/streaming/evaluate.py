"""Window evaluation: close windows past the watermark, claim each once, compare, store.

Any number of processes may run :meth:`Evaluator.run_once`; the database's
claim row makes each window evaluated by exactly one of them, from the merge
of every partition's stored partial. Windows are due when every partition of
the predictions topic has checkpointed progress past the window's end plus
the model's allowed lateness (idle partitions excepted, see
:class:`monitor.windows.Watermarks`); because progress and partials are
written in one transaction, a due window's partials are complete.

Each evaluation -- the first, and every re-evaluation after late labels --
reads the window's inputs from the store (:class:`monitor.analyses.window.WindowInputs`),
runs the pure :func:`monitor.analyses.window.analyse` and publishes the typed
:class:`~detectors.window_result.WindowResult` once on :attr:`Evaluator.events`
(:mod:`monitor.events`). The store subscribes first (it writes the result and
marks the claim done, :func:`store_results`), then the metrics
(:class:`MetricsObserver`); the demo and the alerting layer subscribe too.
What a result holds: :mod:`detectors.window_result` and :mod:`monitor.analyses.window`;
how it is stored: :mod:`monitor.store.result_json`.

A window is analysed with the runtime of the profile version its partials are
binned on; ingestion picks that version by the window's start (the newest
reference in force then, :class:`monitor.analyses.model.ModelRuntimes`), so
every partial of a window has the same one.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

from detectors.attribution import AttributionSummary
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.sketch import WindowSketch
from detectors.window_result import EstimatedPerformance, WindowResult
from monitor.analyses.attribution import WindowExplainer
from monitor.analyses.model import ModelRuntime, StoredReference, as_runtimes
from monitor.analyses.quality import estimated_metrics
from monitor.analyses.window import MergedWindow, WindowInputs, analyse, needs_stored_scores
from monitor.config.service import ServiceConfig
from monitor.events import EventBroker, WindowEvaluated
from monitor.metrics import Metrics
from monitor.store import Store
from monitor.store.result_json import stored_labelled
from monitor.store.rows import ProgressRow
from monitor.streaming.partials import PartialPayload, merge_optional, partial_from_bytes
from monitor.windows import Watermarks

log = logging.getLogger(__name__)


class Evaluator:
    """Evaluates due windows of every model; ``owner`` names this process in claims."""

    def __init__(
        self,
        config: ServiceConfig,
        store: Store,
        runtimes: Mapping[str, ModelRuntime],
        metrics: Metrics,
        owner: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        # Shared with the ingestor in a service: new reference versions appear in both.
        self.runtimes = as_runtimes(runtimes)
        self.metrics = metrics
        self.owner = owner
        self.clock = clock
        #: Every evaluation's result is published here; the store and the metrics come first.
        self.events = EventBroker()
        self.events.subscribe(store_results(store))
        brief = {m.name for m in config.models if not m.metrics.per_feature}
        self.events.subscribe(MetricsObserver(metrics, per_feature=lambda m: m not in brief))
        self._references: dict[tuple[str, int], StoredReference] = {
            (name, r.profile_version): StoredReference(r.profile, r.estimator, r.attribution)
            for name in self.runtimes
            for r in self.runtimes.versions(name).runtimes
        }
        # Runtimes of versions not in self.runtimes (stored windows of unknown versions).
        self._other_runtimes: dict[tuple[str, int], ModelRuntime] = {}
        self._explainers: dict[Path, WindowExplainer] = {}
        # Per model: labelled predictions per stored window bucket, as seen by refresh_labels.
        self._label_buckets: dict[str, dict[float, int]] = {}

    def watermark(self, runtime: ModelRuntime) -> float | None:
        """Return the model's watermark from every partition's checkpointed progress.

        Only an *attended* partition -- one whose consumer rewrote its progress
        row within ``consumer.attended_within_s()`` (three checkpoint intervals,
        at most half the idle timeout; consumers rewrite it at every checkpoint
        once caught up) -- can count as idle. A partition nobody attends (its consumer
        died, or a restarted one has not caught up yet) holds the watermark back
        at its stored event time, however long ago its last record came:
        otherwise a window could close before that partition's records in it
        are read again, and be evaluated without them.
        """
        return self._watermark(runtime, *self._progress())

    def watermarks(self) -> dict[str, float]:
        """Return every model's :meth:`watermark` (models without one are left out).

        The partitions' progress is read once for all models (two queries),
        and models with the same windows share one computation.
        """
        progress, updated = self._progress()
        by_spec: dict[object, float | None] = {}
        marks: dict[str, float] = {}
        for runtime in self.runtimes.values():
            key = runtime.window
            if key not in by_spec:
                by_spec[key] = self._watermark(runtime, progress, updated)
            mark = by_spec[key]
            if mark is not None:
                marks[runtime.name] = mark
        return marks

    def _progress(self) -> tuple[dict[int, ProgressRow], dict[int, float]]:
        consumer, topics = self.config.consumer, self.config.topics
        progress = self.store.progress(consumer.group_id, topics.predictions)
        updated = self.store.progress_updated_at(consumer.group_id, topics.predictions)
        return progress, updated

    def _watermark(
        self,
        runtime: ModelRuntime,
        progress: Mapping[int, ProgressRow],
        updated: Mapping[int, float],
    ) -> float | None:
        timeout = self.config.consumer.idle_timeout_s
        attended = self.config.consumer.attended_within_s()
        marks = Watermarks(runtime.window, idle_timeout_s=timeout, clock=self.clock)
        now = self.clock()
        # A partition with no event yet holds the watermark back until it goes idle.
        marks.load(
            {
                partition: (
                    row.max_event_time if row.max_event_time is not None else -math.inf,
                    (row.last_record_at if row.last_record_at is not None else -math.inf)
                    if now - updated.get(partition, -math.inf) <= attended
                    else now,
                )
                for partition, row in progress.items()
            }
        )
        mark = marks.watermark()
        return None if mark is None or not math.isfinite(mark) else mark

    def run_once(self, *, final: bool = False) -> list[WindowResult]:
        """Evaluate every due, unclaimed window of every model; return what was evaluated.

        With ``final`` every window with partials is due (end of a replay).
        """
        outcomes = []
        stale = self.config.scheduler.claim_stale_after_s
        marks = {name: math.inf for name in self.runtimes} if final else self.watermarks()
        # One query for every model's due windows, instead of one per model: with hundreds
        # of models the per-model queries alone outlasted the evaluation interval.
        due = self.store.due_windows(marks)
        for name, windows in due.items():
            runtime = self.runtimes[name]
            for start, end in windows:
                if self.store.claim_window(name, start, end, self.owner, stale):
                    outcomes.append(self.evaluate(runtime, start, end))
        return outcomes

    def refresh_labels(self) -> list[WindowResult]:
        """Re-evaluate evaluated windows whose labels arrived late; return what was re-evaluated.

        For every model with labels enabled, the windows ending within
        ``labels.max_delay`` of the watermark are candidates. One grouped query
        counts the labelled predictions per stored window bucket; a window any
        of whose buckets changed since the last call (every window, on the first
        call) is checked exactly, and re-evaluated -- its results overwritten,
        quality and label coverage recomputed -- if its labelled count differs
        from the one stored with its results. Several processes may re-evaluate
        the same window; each writes the same results.
        """
        outcomes = []
        labelled = [r for r in self.runtimes.values() if r.config.labels.enabled]
        marks = self.watermarks() if labelled else {}
        for runtime in labelled:
            labels = runtime.config.labels
            mark = marks.get(runtime.name)
            if mark is None:
                continue
            cutoff = mark - labels.max_delay
            buckets = self.store.labelled_counts(runtime.name, cutoff - runtime.window.size_s)
            seen = self._label_buckets.get(runtime.name)
            changed = [
                b
                for b in buckets.keys() | (seen or {}).keys()
                if seen is None or buckets.get(b) != seen.get(b)
            ]
            if changed:
                outcomes += self._refresh_windows(runtime, cutoff, changed)
            self._label_buckets[runtime.name] = buckets
        return outcomes

    def _refresh_windows(
        self, runtime: ModelRuntime, cutoff: float, buckets: list[float]
    ) -> list[WindowResult]:
        """Re-evaluate the windows ending at or after ``cutoff`` that hold a changed bucket."""
        touched = {start for b in buckets for start, _ in runtime.window.windows_for(b)}
        outcomes: list[WindowResult] = []
        before: float | None = None
        while True:  # newest first, a page at a time, down to the cutoff
            page = self.store.window_summaries(runtime.name, limit=200, before=before)
            for summary in page:
                if summary.window_end < cutoff:
                    return outcomes
                if summary.window_start not in touched:
                    continue
                start, end = summary.window_start, summary.window_end
                labelled, _ = self.store.label_coverage(runtime.name, start, end)
                if labelled != stored_labelled(summary):
                    outcomes.append(self.evaluate(runtime, start, end, reevaluation=True))
            if len(page) < 200:
                return outcomes
            before = page[-1].window_start

    def evaluate(
        self, runtime: ModelRuntime, start: float, end: float, *, reevaluation: bool = False
    ) -> WindowResult:
        """Analyse one window and publish its result (stored first); return the result.

        The window is analysed on the runtime of the profile version its
        partials are binned on (``runtime`` names the model).
        """
        began = time.perf_counter()
        merged = self._merged(runtime, start)
        runtime = self._runtime_for(runtime, start, merged.version)
        inputs = self.inputs(runtime, start, end, merged=merged)
        result = analyse(runtime, inputs, self._explainer(runtime))
        self.events.publish(WindowEvaluated(result=result, reevaluation=reevaluation))
        features = 0 if result.drift is None else len(result.drift.features)
        self.metrics.observe_evaluation(features, time.perf_counter() - began)
        if result.drift is not None:
            log.info(
                "window %s [%s, %s): %d rows, drift share %.2f",
                runtime.name,
                start,
                end,
                result.rows,
                result.drift_share,
            )
        return result

    def inputs(
        self,
        runtime: ModelRuntime,
        start: float,
        end: float,
        *,
        merged: MergedWindow | None = None,
    ) -> WindowInputs:
        """Read everything :func:`~monitor.analyses.window.analyse` needs about one window.

        ``merged``: the window's merged partials, if already read.
        """
        if merged is None:
            merged = self._merged(runtime, start)
        # Predictions are stored for label joins only (labels.enabled): without them the
        # coverage and join queries find nothing, and were 2 of a window's 6 round trips.
        joins = runtime.config.labels.enabled
        labelled, with_request = (
            self.store.label_coverage(runtime.name, start, end) if joins else (0, 0)
        )
        version = merged.version
        reference = None if version is None else self._reference(runtime.name, version)
        enough = (
            merged.sketch is not None and merged.sketch.rows >= runtime.config.window.min_records
        )
        section = runtime.config.change_detection
        return WindowInputs(
            start=start,
            end=end,
            merged=merged,
            labelled=labelled,
            predictions_stored=with_request,
            joined=self.store.joined_with_times(runtime.name, start, end) if joins else [],
            scores=self.store.scores_with_times(runtime.name, start, end)
            if section is not None and "score" in section.streams
            else [],
            reference=reference,
            rolling=None
            if version is None or not enough
            else self._rolling_reference(runtime, start, version),
            stored_scores=self.store.window_scores(runtime.name, start, end)
            if enough and needs_stored_scores(runtime, merged, reference)
            else None,
            evaluated_at=self.clock(),
        )

    def _runtime_for(
        self, runtime: ModelRuntime, start: float, version: int | None
    ) -> ModelRuntime:
        """The runtime of profile ``version`` of the model (None: the one in force at ``start``)."""
        name = runtime.name
        if name not in self.runtimes:
            return runtime
        if version is None:
            return self.runtimes.at(name, start)
        known = self.runtimes.version(name, version)
        if known is not None:
            return known
        key = (name, version)
        if key not in self._other_runtimes:
            reference = self._reference(name, version)
            try:
                self._other_runtimes[key] = ModelRuntime(
                    runtime.config,
                    reference.profile,
                    version,
                    estimator=reference.estimator,
                    attribution=reference.attribution,
                )
            except ValueError as error:  # does not fit the config: analysed as before
                log.warning("window %s [%s, ...): %s", name, start, error)
                return runtime
        return self._other_runtimes[key]

    def _explainer(self, runtime: ModelRuntime) -> WindowExplainer | None:
        """The cached explainer of the model's file (``attribution.source: model``), if any."""
        section = runtime.config.attribution
        if section is None or section.source != "model" or section.model is None:
            return None
        return self._explainers.setdefault(section.model, WindowExplainer(section.model))

    def _merged(self, runtime: ModelRuntime, start: float) -> MergedWindow:
        """Merge the window's partials binned on its most common profile version.

        Partials on other versions (a profile changed mid-window) cannot be
        merged and are counted in ``rows_other_profiles``.
        """
        decoded = [
            self._decode(runtime.name, row.sketch)
            for row in self.store.partials_for_window(runtime.name, start)
        ]
        if not decoded:
            return MergedWindow(None, None, 0, None)
        by_rows: Counter[int] = Counter()
        for partial in decoded:
            by_rows[partial.profile_version] += partial.sketch.rows
        version, _ = by_rows.most_common(1)[0]
        merged: WindowSketch | None = None
        attribution: AttributionSummary | None = None
        performance: CBPESketch | None = None
        for partial in decoded:
            if partial.profile_version != version:
                continue
            merged = merge_optional(merged, partial.sketch)
            attribution = merge_optional(attribution, partial.attribution)
            performance = merge_optional(performance, partial.performance)
        other = sum(n for v, n in by_rows.items() if v != version)
        return MergedWindow(merged, version, other, attribution, performance)

    def _rolling_reference(
        self, runtime: ModelRuntime, start: float, version: int
    ) -> WindowSketch | None:
        """The merge of the previous ``rolling_reference`` windows, or None to use the profile.

        Used only when every one of those windows holds at least ``min_records``
        rows binned on the same profile version; until then (a new model, a
        gap in traffic, a new profile) the window is compared with the profile.
        """
        count = runtime.config.rolling_reference
        if count is None:
            return None
        # Whole window sizes back, so that hopping windows never overlap the current one.
        size = runtime.window.size_s
        merged: WindowSketch | None = None
        for k in range(1, count + 1):
            earlier = self._merged(runtime, start - k * size)
            previous, previous_version = earlier.sketch, earlier.version
            if (
                previous is None
                or previous_version != version
                or previous.rows < runtime.config.window.min_records
            ):
                return None
            merged = previous if merged is None else merged.merge(previous)
        return merged

    def _decode(self, model: str, payload: bytes) -> PartialPayload:
        return partial_from_bytes(payload, lambda version: self._profile(model, version))

    def _profile(self, model: str, version: int) -> ReferenceProfile:
        return self._reference(model, version).profile

    def _reference(self, model: str, version: int) -> StoredReference:
        """The stored reference (profile and estimator) of one profile version, cached."""
        key = (model, version)
        if key not in self._references:
            payload = self.store.profile(model, version)
            if payload is None:
                raise LookupError(f"profile version {version} of model {model!r} is not stored")
            self._references[key] = StoredReference.from_bytes(payload)
        return self._references[key]


def store_results(store: Store) -> Callable[[WindowEvaluated], None]:
    """The subscriber that stores each result and marks its window's claim done."""

    def write(event: WindowEvaluated) -> None:
        store.save_window_result(event.result)

    return write


class MetricsObserver:
    """The subscriber that shows each evaluated window's result in the per-window gauges.

    :class:`monitor.metrics.LatestWindows` keeps the model's newest window (and
    newest labelled window) and produces the gauges from them at scrape time;
    this adds the exported subset of the window's estimated quality, which is
    an analysis decision (:func:`monitor.analyses.quality.estimated_metrics`).
    """

    def __init__(
        self, metrics: Metrics, *, per_feature: Callable[[str], bool] = lambda _model: True
    ) -> None:
        self.metrics = metrics
        #: Whether a model (by name) exports per-feature series (``metrics.per_feature``).
        self.per_feature = per_feature

    def __call__(self, event: WindowEvaluated) -> None:
        """Hand ``event``'s result to the metrics."""
        result = event.result
        estimate = result.estimated_performance
        self.metrics.observe_result(
            result,
            estimated_quality=estimated_metrics(estimate)
            if isinstance(estimate, EstimatedPerformance)
            else None,
            per_feature=self.per_feature(result.model),
        )

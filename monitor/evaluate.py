"""Window evaluation: close windows past the watermark, claim each once, compare, store.

Any number of processes may run :meth:`Evaluator.run_once`; the database's
claim row makes each window evaluated by exactly one of them, from the merge
of every partition's stored partial. Windows are due when every partition of
the predictions topic has checkpointed progress past the window's end plus
the model's allowed lateness (idle partitions excepted, see
:class:`monitor.windows.Watermarks`); because progress and partials are
written in one transaction, a due window's partials are complete.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from detectors.drift import DriftReport, compare_sketches
from detectors.profile import ReferenceProfile
from detectors.sketch import WindowSketch
from monitor.config import ServiceConfig
from monitor.metrics import FeatureObservation, Metrics
from monitor.runtime import ModelRuntime, sketch_from_bytes
from monitor.store import Store
from monitor.store.rows import FeatureResultRow, WindowSummaryRow
from monitor.windows import Watermarks

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """One evaluated window: its summary as stored, and the drift report (None if too few rows)."""

    summary: WindowSummaryRow
    report: DriftReport | None


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
        self.runtimes = dict(runtimes)
        self.metrics = metrics
        self.owner = owner
        self.clock = clock
        self._profiles: dict[tuple[str, int], ReferenceProfile] = {
            (name, r.profile_version): r.profile for name, r in self.runtimes.items()
        }
        self._latest_end: dict[str, float] = {}
        self._latest_labelled_end: dict[str, float] = {}
        # Per model: labelled predictions per stored window bucket, as seen by refresh_labels.
        self._label_buckets: dict[str, dict[float, int]] = {}

    def watermark(self, runtime: ModelRuntime) -> float | None:
        """Return the model's watermark from every partition's checkpointed progress.

        Only an *attended* partition -- one whose consumer rewrote its progress
        row within ``idle_timeout_s`` (consumers do so at every checkpoint once
        caught up) -- can count as idle. A partition nobody attends (its consumer
        died, or a restarted one has not caught up yet) holds the watermark back
        at its stored event time, however long ago its last record came:
        otherwise a window could close before that partition's records in it
        are read again, and be evaluated without them.
        """
        consumer, topics = self.config.consumer, self.config.topics
        progress = self.store.progress(consumer.group_id, topics.predictions)
        updated = self.store.progress_updated_at(consumer.group_id, topics.predictions)
        timeout = self.config.consumer.idle_timeout_s
        marks = Watermarks(runtime.window, idle_timeout_s=timeout, clock=self.clock)
        now = self.clock()
        # A partition with no event yet holds the watermark back until it goes idle.
        marks.load(
            {
                partition: (
                    row.max_event_time if row.max_event_time is not None else -math.inf,
                    (row.last_record_at if row.last_record_at is not None else -math.inf)
                    if now - updated.get(partition, -math.inf) <= timeout
                    else now,
                )
                for partition, row in progress.items()
            }
        )
        mark = marks.watermark()
        return None if mark is None or not math.isfinite(mark) else mark

    def run_once(self, *, final: bool = False) -> list[WindowOutcome]:
        """Evaluate every due, unclaimed window of every model; return what was evaluated.

        With ``final`` every window with partials is due (end of a replay).
        """
        outcomes = []
        stale = self.config.scheduler.claim_stale_after_s
        for runtime in self.runtimes.values():
            mark = math.inf if final else self.watermark(runtime)
            if mark is None:
                continue
            for start, end in self.store.open_windows(runtime.name, up_to_end=mark):
                if self.store.claim_window(runtime.name, start, end, self.owner, stale):
                    outcomes.append(self.evaluate(runtime, start, end))
        return outcomes

    def refresh_labels(self) -> list[WindowOutcome]:
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
        for runtime in self.runtimes.values():
            labels = runtime.config.labels
            if not labels.enabled:
                continue
            mark = self.watermark(runtime)
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
    ) -> list[WindowOutcome]:
        """Re-evaluate the windows ending at or after ``cutoff`` that hold a changed bucket."""
        touched = {start for b in buckets for start, _ in runtime.window.windows_for(b)}
        outcomes: list[WindowOutcome] = []
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
                if labelled != summary.details.get("labelled"):
                    outcomes.append(self.evaluate(runtime, start, end))
            if len(page) < 200:
                return outcomes
            before = page[-1].window_start

    def evaluate(self, runtime: ModelRuntime, start: float, end: float) -> WindowOutcome:
        """Merge the window's partials, run the model's detectors and store the results."""
        sketch, version, ignored = self._merged(runtime, start)
        rows = sketch.rows if sketch is not None else 0
        labelled, with_request = self.store.label_coverage(runtime.name, start, end)
        details: dict[str, object] = {
            "profile_version": version,
            "rows_other_profiles": ignored,
            "labelled": labelled,
            "predictions_stored": with_request,
            "quality": self._quality(runtime, start, end),
        }
        if sketch is None or version is None or rows < runtime.config.window.min_records:
            summary = WindowSummaryRow(
                model=runtime.name,
                window_start=start,
                window_end=end,
                rows=rows,
                status="insufficient_data",
                dataset_drift=False,
                drift_share=0.0,
                details=details,
            )
            self.store.finish_window(runtime.name, start, summary, [])
            self._observe(runtime, summary, None)
            return WindowOutcome(summary, None)
        profile = self._profile(runtime.name, version)
        reference = self._rolling_reference(runtime, start, version)
        details["reference"] = "profile" if reference is None else "rolling"
        report = compare_sketches(
            profile, sketch, runtime.settings, prediction=runtime.prediction, reference=reference
        )
        summary = WindowSummaryRow(
            model=runtime.name,
            window_start=start,
            window_end=end,
            rows=rows,
            status="ok",
            dataset_drift=report.dataset_drift,
            drift_share=report.drift_share,
            prediction_drift=None if report.prediction is None else report.prediction.drift,
            details=details,
        )
        features = [
            FeatureResultRow(
                model=runtime.name,
                window_start=start,
                feature=f.name,
                method=f.method,
                kind=f.kind.value,
                statistic=_finite(f.statistic),
                p_value=None if f.p_value is None else _finite(f.p_value),
                threshold=f.threshold,
                drift=f.drift,
                effect_size=_finite(f.effect_size),
                missing_share=f.missing_share,
                status=f.status,
            )
            for f in (*report.features, *([report.prediction] if report.prediction else []))
        ]
        self.store.finish_window(runtime.name, start, summary, features)
        self._observe(runtime, summary, report)
        log.info(
            "window %s [%s, %s): %d rows, drift share %.2f",
            runtime.name,
            start,
            end,
            rows,
            report.drift_share,
        )
        return WindowOutcome(summary, report)

    def _merged(
        self, runtime: ModelRuntime, start: float
    ) -> tuple[WindowSketch | None, int | None, int]:
        """Merge the window's partials binned on its most common profile version.

        Returns ``(sketch, version, rows on other versions)``; partials on other
        versions (a profile changed mid-window) cannot be merged and are counted.
        """
        decoded = []
        for row in self.store.partials_for_window(runtime.name, start):
            version, sketch = self._decode(runtime.name, row.sketch)
            decoded.append((version, sketch))
        if not decoded:
            return None, None, 0
        by_rows: Counter[int] = Counter()
        for version, sketch in decoded:
            by_rows[version] += sketch.rows
        version, _ = by_rows.most_common(1)[0]
        merged: WindowSketch | None = None
        for v, sketch in decoded:
            if v == version:
                merged = sketch if merged is None else merged.merge(sketch)
        return merged, version, sum(n for v, n in by_rows.items() if v != version)

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
            previous, previous_version, _ = self._merged(runtime, start - k * size)
            if (
                previous is None
                or previous_version != version
                or previous.rows < runtime.config.window.min_records
            ):
                return None
            merged = previous if merged is None else merged.merge(previous)
        return merged

    def _decode(self, model: str, payload: bytes) -> tuple[int, WindowSketch]:
        return sketch_from_bytes(payload, lambda version: self._profile(model, version))

    def _profile(self, model: str, version: int) -> ReferenceProfile:
        key = (model, version)
        if key not in self._profiles:
            payload = self.store.profile(model, version)
            if payload is None:
                raise LookupError(f"profile version {version} of model {model!r} is not stored")
            self._profiles[key] = ReferenceProfile.from_bytes(payload)
        return self._profiles[key]

    def _quality(self, runtime: ModelRuntime, start: float, end: float) -> dict[str, float]:
        """Quality metrics of the window's labelled predictions (empty when none)."""
        joined = self.store.joined(runtime.name, start, end)
        if not joined:
            return {}
        if runtime.config.prediction.field == "label":
            correct = sum(str(j.predicted_label) == j.label for j in joined)
            return {"accuracy": correct / len(joined)}
        errors = []
        for j in joined:
            try:
                errors.append(abs(float(j.label) - float(j.score)))  # type: ignore[arg-type]
            except (TypeError, ValueError):
                continue
        return {"mae": sum(errors) / len(errors)} if errors else {}

    def _observe(
        self, runtime: ModelRuntime, summary: WindowSummaryRow, report: DriftReport | None
    ) -> None:
        """Update the gauges, if this is the model's newest evaluated window.

        Quality and label coverage follow the newest window that has labels
        instead: labels arrive late, so the newest window usually has none yet,
        and an older window re-evaluated when its labels came updates them.
        """
        self._observe_labels(runtime, summary)
        if summary.window_end < self._latest_end.get(runtime.name, -math.inf):
            return
        self._latest_end[runtime.name] = summary.window_end
        m = self.metrics
        features = []
        prediction = None
        if report is not None:
            features = [
                FeatureObservation(
                    f.name, f.method, _finite(f.statistic), f.p_value, f.drift, f.missing_share
                )
                for f in report.features
            ]
            if report.prediction is not None:
                prediction = (report.prediction.method, _finite(report.prediction.statistic))
        m.observe_window(
            runtime.name,
            features,
            prediction,
            summary.drift_share if report is not None else None,
            summary.rows,
            summary.window_end,
        )

    def _observe_labels(self, runtime: ModelRuntime, summary: WindowSummaryRow) -> None:
        """Set quality and label coverage from ``summary`` if it is the newest labelled window."""
        details = summary.details
        total = int(details.get("predictions_stored", 0) or 0)
        labelled = int(details.get("labelled", 0) or 0)
        if not (total and labelled):
            return
        if summary.window_end < self._latest_labelled_end.get(runtime.name, -math.inf):
            return
        self._latest_labelled_end[runtime.name] = summary.window_end
        m = self.metrics
        m.label_coverage_ratio.labels(model=runtime.name).set(labelled / total)
        quality = details.get("quality") or {}
        for metric, value in quality.items():
            m.model_quality.labels(model=runtime.name, metric=metric).set(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

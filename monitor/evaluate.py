"""Window evaluation: close windows past the watermark, claim each once, compare, store.

Any number of processes may run :meth:`Evaluator.run_once`; the database's
claim row makes each window evaluated by exactly one of them, from the merge
of every partition's stored partial. Windows are due when every partition of
the predictions topic has checkpointed progress past the window's end plus
the model's allowed lateness (idle partitions excepted, see
:class:`monitor.windows.Watermarks`); because progress and partials are
written in one transaction, a due window's partials are complete.

What a window's summary ``details`` hold besides the drift results:

* ``quality`` (measured metrics, ``{}`` without labels) and
  ``quality_report`` (row counts, positive class, histogram bounds, per-class
  figures) from the window's joined labels (:func:`monitor.quality.model_quality`),
  for every window;
* ``data_quality``: :func:`detectors.quality.data_quality` of the merged
  sketch against the profile, with the model's ``data_quality`` thresholds,
  as ``DataQualityReport.to_dict()``; only for windows with at least
  ``min_records`` rows, like the drift tests (a handful of rows would fail
  the ratio checks by chance);
* ``multivariate`` (models with a ``multivariate`` section, windows with at
  least ``min_records`` rows): ``drift`` (any method flagged), the row
  samples' sizes and one ``MultivariateResult.to_dict()`` per method, from
  the window's merged row sample against the reference's (or the rolling
  reference's merged samples); ``{"error": "..."}`` when a side has no sample;
* ``attribution`` and ``drift_impact`` (models with an ``attribution``
  section, windows with at least ``min_records`` rows): SHAP attribution
  drift against the reference's summary and the features ranked by drift
  impact, see :mod:`monitor.attribution`;
* ``change_detection`` (models with a ``change_detection`` section, every
  window): where the online change detectors found a change in the window's
  stored scores and labelled errors, in event-time order
  (:func:`monitor.change_detection.change_points`); recomputed with quality
  when late labels arrive;
* ``estimated_performance``: the CBPE estimate (``PerformanceEstimate.to_dict()``
  plus coverage) for models with ``performance_estimation``, again only for
  windows with at least ``min_records`` rows. The estimator is the one stored
  with the window's profile version. Every partial keeps the CBPE sketch of
  its records' scores (exact and mergeable: per score bin, counts and sums of
  calibrated probabilities), so the estimate equals ``CBPE.estimate`` on all
  of the window's scores, without labels or request ids. ``coverage`` is the
  share of the window's records that had a score. Windows whose partials were
  written before they kept CBPE sketches fall back to the scores of the
  window's stored predictions. When no estimate can be made it holds
  ``{"error": "..."}``.

A re-evaluation after late labels recomputes all of them (the same data
quality and estimate, new quality).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from detectors.attribution import AttributionSummary
from detectors.drift import DriftReport, compare_sketches
from detectors.errors import IncompatibleSketchError
from detectors.multivariate import multivariate_drift
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.quality import data_quality
from detectors.sketch import WindowSketch
from monitor.attribution import WindowExplainer, attribution_details
from monitor.change_detection import change_points, error_points, score_points
from monitor.change_detection_config import ChangeDetectionSection
from monitor.config import MultivariateWindowSection, ServiceConfig
from monitor.metrics import FeatureObservation, Metrics
from monitor.quality import (
    estimated_metrics,
    estimated_performance,
    model_quality,
    sketch_estimate,
)
from monitor.runtime import (
    ModelRuntime,
    PartialPayload,
    StoredReference,
    merge_optional,
    partial_from_bytes,
)
from monitor.store import Store
from monitor.store.rows import FeatureResultRow, JoinedPrediction, WindowSummaryRow
from monitor.windows import Watermarks

log = logging.getLogger(__name__)


class MergedWindow(NamedTuple):
    """A window's partials merged: the sketch, its profile version, rows left out, SHAP summary.

    ``sketch`` and ``version`` are None without partials; ``rows_other_profiles``
    counts the rows of partials on another profile version; ``attribution``
    merges the partials' summaries of ``explanations`` and ``performance``
    their CBPE sketches (None when no partial has one).
    """

    sketch: WindowSketch | None
    version: int | None
    rows_other_profiles: int
    attribution: AttributionSummary | None
    performance: CBPESketch | None = None


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
        self._references: dict[tuple[str, int], StoredReference] = {
            (name, r.profile_version): StoredReference(r.profile, r.estimator, r.attribution)
            for name, r in self.runtimes.items()
        }
        self._explainers: dict[Path, WindowExplainer] = {}
        self._latest_end: dict[str, float] = {}
        self._latest_labelled_end: dict[str, float] = {}
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
        consumer, topics = self.config.consumer, self.config.topics
        progress = self.store.progress(consumer.group_id, topics.predictions)
        updated = self.store.progress_updated_at(consumer.group_id, topics.predictions)
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
        sketch, version, ignored, explained, scored = self._merged(runtime, start)
        rows = sketch.rows if sketch is not None else 0
        labelled, with_request = self.store.label_coverage(runtime.name, start, end)
        stored = None if version is None else self._reference(runtime.name, version)
        estimator = stored.estimator if stored is not None else runtime.estimator
        joined = self.store.joined_with_times(runtime.name, start, end)
        quality = model_quality(
            runtime.config.prediction, [row for _, row in joined], estimator=estimator
        )
        details: dict[str, object] = {
            "profile_version": version,
            "rows_other_profiles": ignored,
            "labelled": labelled,
            "predictions_stored": with_request,
            "quality": quality.metrics,
            "quality_report": quality.report,
        }
        if runtime.config.change_detection is not None:
            details["change_detection"] = self._change_detection(
                runtime, runtime.config.change_detection, start, end, joined
            )
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
        details["data_quality"] = self._data_quality(runtime, profile, sketch)
        if runtime.config.performance_estimation is not None:
            details["estimated_performance"] = self._estimate(
                runtime, version, start, end, rows, scored
            )
        if runtime.config.multivariate is not None:
            details["multivariate"] = _multivariate(
                runtime.config.multivariate, profile, sketch, reference
            )
        report = compare_sketches(
            profile, sketch, runtime.settings, prediction=runtime.prediction, reference=reference
        )
        if runtime.config.attribution is not None:
            details["attribution"], details["drift_impact"] = self._attribution(
                runtime, version, sketch, explained, report
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
            previous, previous_version, *_ = self._merged(runtime, start - k * size)
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

    def _data_quality(
        self, runtime: ModelRuntime, profile: ReferenceProfile, sketch: WindowSketch
    ) -> dict[str, Any]:
        """The data-quality report of the merged window, as JSON (an error if it cannot run)."""
        try:
            return data_quality(profile, sketch, runtime.data_quality).to_dict()
        except ValueError as error:  # bounds naming a feature an older profile lacks, ...
            log.warning("data quality of %s not checked: %s", runtime.name, error)
            return {"error": str(error)}

    def _attribution(
        self,
        runtime: ModelRuntime,
        version: int,
        sketch: WindowSketch,
        explained: AttributionSummary | None,
        report: DriftReport,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The window's attribution drift and drift-impact ranking (see monitor.attribution)."""
        section = runtime.config.attribution
        if section is None:
            return {}, []
        stored = self._reference(runtime.name, version)
        current = explained or AttributionSummary.empty()
        if section.source == "model" and section.model is not None:
            if sketch.sample is None:
                return {
                    "error": "some of the window's partial sketches have no row sample "
                    "(written before attribution from the model was configured)"
                }, []
            explainer = self._explainers.setdefault(section.model, WindowExplainer(section.model))
            try:
                current = explainer.summary(
                    sketch.sample, dict(stored.profile.specs), stored.profile.sample, section
                )
            except ValueError as error:
                log.warning("attribution of %s not computed: %s", runtime.name, error)
                return {"error": str(error), "source": section.source}, []
        return attribution_details(section, stored.attribution, current, report)

    def _change_detection(
        self,
        runtime: ModelRuntime,
        section: ChangeDetectionSection,
        start: float,
        end: float,
        joined: list[tuple[float, JoinedPrediction]],
    ) -> dict[str, Any]:
        """The online change detectors over the window's score and error streams."""
        scores = (
            self.store.scores_with_times(runtime.name, start, end)
            if "score" in section.streams
            else []
        )
        return change_points(
            section,
            scores=score_points([s for _, s in scores], [t for t, _ in scores]),
            errors=error_points(
                runtime.config.prediction, [row for _, row in joined], [t for t, _ in joined]
            ),
        )

    def _estimate(
        self,
        runtime: ModelRuntime,
        version: int,
        start: float,
        end: float,
        rows: int,
        scored: CBPESketch | None,
    ) -> dict[str, Any]:
        """The CBPE estimate of the window (see the module docstring)."""
        estimator = self._reference(runtime.name, version).estimator
        if estimator is None:
            return {
                "error": f"reference profile version {version} was stored without a "
                "performance estimator: store a new reference built with "
                "performance_estimation configured"
            }
        if scored is not None and scored.model == estimator.model:
            if scored.rows == 0:
                return {"error": "no record of the window has a score (prediction.score)"}
            return sketch_estimate(estimator, scored, rows)
        # Partials written before they kept CBPE sketches: the stored predictions' scores.
        scores = self.store.window_scores(runtime.name, start, end)
        if not scores:
            return {
                "error": "no stored prediction of the window has a score (predictions are "
                "stored with a request_id, and need prediction.score)"
            }
        return estimated_performance(estimator, scores, rows)

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
        # driftline_feature_missing_ratio is set by observe_window from the drift report's
        # missing shares, which are the data-quality "missing" values of the same features.
        estimate = summary.details.get("estimated_performance") or {}
        m.observe_estimated_quality(runtime.name, estimated_metrics(estimate))
        attribution = summary.details.get("attribution") or {}
        m.observe_attribution(
            runtime.name,
            [
                (f["name"], f["current_mean_abs"], bool(f["drift"]))
                for f in attribution.get("features", [])
            ],
        )
        joint = summary.details.get("multivariate") or {}
        m.observe_multivariate(
            runtime.name,
            [(r["method"], r["statistic"], bool(r["drift"])) for r in joint.get("methods", [])],
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
        m.observe_quality(runtime.name, details.get("quality") or {})


def _multivariate(
    section: MultivariateWindowSection,
    profile: ReferenceProfile,
    sketch: WindowSketch,
    reference: WindowSketch | None,
) -> dict[str, Any]:
    """The joint-drift results of the window's row sample, as JSON (or an error)."""
    base = reference or profile.reference
    if base.sample is None:
        return {
            "error": "the reference profile was stored without a row sample: store a new "
            "reference (driftline reference build) with multivariate configured"
        }
    if sketch.sample is None:
        return {
            "error": "some of the window's partial sketches have no row sample (written "
            "before multivariate was configured)"
        }
    try:
        results = multivariate_drift(
            profile,
            sketch,
            section.methods,
            alpha=section.alpha,
            seed=section.seed,
            max_levels=section.max_levels,
            reference=reference,
        )
    except IncompatibleSketchError as error:  # samples over different features
        return {"error": str(error)}
    return {
        "drift": any(r.drift for r in results),
        "rows_reference": base.sample.rows,
        "rows_current": sketch.sample.rows,
        "methods": [r.to_dict() for r in results],
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None

"""The per-window analyses as one pure step: a window's inputs in, a :class:`WindowResult` out.

:class:`monitor.streaming.evaluate.Evaluator` reads what a window needs from the store
(:class:`WindowInputs`: its merged partials, joined labels, stored scores and
the reference they were binned on) and calls :func:`analyse`, which reads
nothing else: the same inputs always give the same result, whichever process
evaluates the window. What each analysis holds is documented on the fields
of :class:`~detectors.window_result.WindowResult`; quality, label coverage
and change points are computed for every window, the others only for windows
with at least the model's ``window.min_records`` rows (a handful of rows
would fail the drift tests' and data-quality checks' ratios by chance):

* drift (:func:`detectors.drift.compare_sketches`) against the profile, or
  the merge of the previous ``rolling_reference`` windows;
* data quality (:func:`detectors.quality.data_quality`) with the model's
  thresholds;
* the CBPE estimate (models with ``performance_estimation``) from the merged
  CBPE sketch of the window's scores -- exact and mergeable, so it equals
  ``CBPE.estimate`` on all of the window's scores -- or, for partials written
  before they kept one, from the window's stored prediction scores;
* joint drift (models with ``multivariate``) of the merged row sample;
* attribution drift and drift impact (models with ``attribution``, see
  :mod:`monitor.analyses.attribution`);
* change points (models with ``change_detection``, see
  :mod:`monitor.analyses.change_detection`).

Adding an analysis: a result type and a field in
:mod:`detectors.window_result`, a function here called from :func:`analyse`,
and its pair in the store's mapper :mod:`monitor.store.result_json`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from detectors.attribution import AttributionSummary, DriftImpact
from detectors.drift import DriftReport, compare_sketches
from detectors.errors import IncompatibleSketchError
from detectors.multivariate import multivariate_drift
from detectors.performance import CBPESketch
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityReport, data_quality
from detectors.sketch import WindowSketch
from detectors.window_result import (
    AnalysisError,
    AttributionDrift,
    EstimatedPerformance,
    JointDrift,
    JointMethodResult,
    WindowResult,
)
from monitor.analyses.attribution import WindowExplainer, window_attribution
from monitor.analyses.change_detection import change_points, error_points, score_points
from monitor.analyses.model import ModelRuntime, StoredReference
from monitor.analyses.quality import estimated_performance, model_quality, sketch_estimate
from monitor.config.service import MultivariateWindowSection
from monitor.store.rows import JoinedPrediction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MergedWindow:
    """A window's partials merged: the sketch, its profile version, rows left out, summaries.

    ``sketch`` and ``version`` are None without partials; ``rows_other_profiles``
    counts the rows of partials on another profile version; ``attribution``
    merges the partials' SHAP summaries of ``explanations`` and ``performance``
    their CBPE sketches (None when no partial has one).
    """

    sketch: WindowSketch | None
    version: int | None
    rows_other_profiles: int
    attribution: AttributionSummary | None
    performance: CBPESketch | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowInputs:
    """Everything :func:`analyse` reads about one window, read from the store beforehand.

    ``reference`` is the stored reference of ``merged.version`` (None without
    partials); ``rolling`` the merged previous windows when the model uses a
    rolling reference and they qualify; ``joined`` the labelled predictions
    and ``scores`` the stored prediction scores, each with its event time, in
    event-time order; ``stored_scores`` the window's stored scores for the
    CBPE fallback (None when it is not needed).
    """

    start: float
    end: float
    merged: MergedWindow
    labelled: int
    predictions_stored: int
    joined: Sequence[tuple[float, JoinedPrediction]]
    scores: Sequence[tuple[float, float]]
    reference: StoredReference | None
    rolling: WindowSketch | None = None
    stored_scores: Sequence[float] | None = None
    evaluated_at: float | None = None


def needs_stored_scores(
    runtime: ModelRuntime, merged: MergedWindow, reference: StoredReference | None
) -> bool:
    """Whether the CBPE estimate falls back to the stored scores (no CBPE sketch of its estimator).

    True for windows whose partials were written before they kept CBPE sketches.
    """
    if runtime.config.performance_estimation is None or reference is None:
        return False
    estimator, scored = reference.estimator, merged.performance
    return estimator is not None and (scored is None or scored.model != estimator.model)


def analyse(
    runtime: ModelRuntime, inputs: WindowInputs, explainer: WindowExplainer | None = None
) -> WindowResult:
    """Run every analysis the model's config asks for on one window; return its result.

    ``explainer`` explains the window's row sample for ``attribution.source:
    model`` (the evaluator keeps one per model file).
    """
    merged, reference = inputs.merged, inputs.reference
    sketch, version = merged.sketch, merged.version
    rows = sketch.rows if sketch is not None else 0
    estimator = reference.estimator if reference is not None else runtime.estimator
    config = runtime.config
    quality = model_quality(
        config.prediction, [row for _, row in inputs.joined], estimator=estimator
    )
    change_detection = None
    if config.change_detection is not None:
        section = config.change_detection
        change_detection = change_points(
            section,
            scores=score_points([s for _, s in inputs.scores], [t for t, _ in inputs.scores])
            if "score" in section.streams
            else [],
            errors=error_points(
                config.prediction,
                [row for _, row in inputs.joined],
                [t for t, _ in inputs.joined],
            ),
        )
    result = WindowResult(
        model=runtime.name,
        window_start=inputs.start,
        window_end=inputs.end,
        rows=rows,
        status="insufficient_data",
        profile_version=version,
        rows_other_profiles=merged.rows_other_profiles,
        labelled=inputs.labelled,
        predictions_stored=inputs.predictions_stored,
        quality=quality,
        change_detection=change_detection,
        evaluated_at=inputs.evaluated_at,
    )
    if sketch is None or version is None or reference is None or rows < config.window.min_records:
        return result
    profile = reference.profile
    report = compare_sketches(
        profile, sketch, runtime.settings, prediction=runtime.prediction, reference=inputs.rolling
    )
    attribution: AttributionDrift | AnalysisError | None = None
    impact: tuple[DriftImpact, ...] = ()
    if config.attribution is not None:
        attribution, impact = _attribution(runtime, reference, sketch, merged, report, explainer)
    return replace(
        result,
        status="ok",
        reference="profile" if inputs.rolling is None else "rolling",
        drift=report,
        data_quality=_data_quality(runtime, profile, sketch),
        estimated_performance=None
        if config.performance_estimation is None
        else _estimate(reference, merged.performance, rows, inputs.stored_scores),
        joint_drift=None
        if config.multivariate is None
        else _joint_drift(config.multivariate, profile, sketch, inputs.rolling),
        attribution=attribution,
        drift_impact=impact,
    )


def _data_quality(
    runtime: ModelRuntime, profile: ReferenceProfile, sketch: WindowSketch
) -> DataQualityReport | AnalysisError:
    """The data-quality report of the merged window (an error if it cannot run)."""
    try:
        return data_quality(profile, sketch, runtime.data_quality)
    except ValueError as error:  # bounds naming a feature an older profile lacks, ...
        log.warning("data quality of %s not checked: %s", runtime.name, error)
        return AnalysisError(message=str(error))


def _attribution(
    runtime: ModelRuntime,
    reference: StoredReference,
    sketch: WindowSketch,
    merged: MergedWindow,
    report: DriftReport,
    explainer: WindowExplainer | None,
) -> tuple[AttributionDrift | AnalysisError, tuple[DriftImpact, ...]]:
    """The window's attribution drift and drift-impact ranking (monitor.analyses.attribution)."""
    section = runtime.config.attribution
    assert section is not None
    current = merged.attribution or AttributionSummary.empty()
    if section.source == "model" and section.model is not None:
        if sketch.sample is None:
            return AnalysisError(
                message="some of the window's partial sketches have no row sample "
                "(written before attribution from the model was configured)"
            ), ()
        if explainer is None:
            explainer = WindowExplainer(section.model)
        try:
            current = explainer.summary(
                sketch.sample, dict(reference.profile.specs), reference.profile.sample, section
            )
        except ValueError as error:
            log.warning("attribution of %s not computed: %s", runtime.name, error)
            return AnalysisError(message=str(error), source=section.source), ()
    return window_attribution(section, reference.attribution, current, report)


def _estimate(
    reference: StoredReference,
    scored: CBPESketch | None,
    rows: int,
    stored_scores: Sequence[float] | None,
) -> EstimatedPerformance | AnalysisError:
    """The CBPE estimate of the window (see the module docstring)."""
    estimator = reference.estimator
    if estimator is None:
        return AnalysisError(
            message="the reference profile was stored without a "
            "performance estimator: store a new reference built with "
            "performance_estimation configured"
        )
    if scored is not None and scored.model == estimator.model:
        if scored.rows == 0:
            return AnalysisError(message="no record of the window has a score (prediction.score)")
        return sketch_estimate(estimator, scored, rows)
    # Partials written before they kept CBPE sketches: the stored predictions' scores.
    if not stored_scores:
        return AnalysisError(
            message="no stored prediction of the window has a score (predictions are "
            "stored with a request_id, and need prediction.score)"
        )
    return estimated_performance(estimator, stored_scores, rows)


def _joint_drift(
    section: MultivariateWindowSection,
    profile: ReferenceProfile,
    sketch: WindowSketch,
    reference: WindowSketch | None,
) -> JointDrift | AnalysisError:
    """The joint-drift results of the window's row sample (or an error)."""
    base = reference or profile.reference
    if base.sample is None:
        return AnalysisError(
            message="the reference profile was stored without a row sample: store a new "
            "reference (driftline reference build) with multivariate configured"
        )
    if sketch.sample is None:
        return AnalysisError(
            message="some of the window's partial sketches have no row sample (written "
            "before multivariate was configured)"
        )
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
        return AnalysisError(message=str(error))
    return JointDrift(
        rows_reference=base.sample.rows,
        rows_current=sketch.sample.rows,
        methods=tuple(JointMethodResult(result=r) for r in results),
    )


__all__ = ["MergedWindow", "WindowInputs", "analyse", "needs_stored_scores"]

"""Per-window model quality from joined labels, and label-free estimates from scores.

:func:`model_quality` turns a window's labelled predictions (the rows of
:meth:`monitor.store.Store.joined`) into the metrics of
:mod:`detectors.quality`; :func:`estimated_performance` applies the model's
fitted :class:`~detectors.performance.CBPE` to the window's scores. Both
return the typed parts of a :class:`~detectors.window_result.WindowResult`
(:class:`~detectors.window_result.MeasuredQuality`,
:class:`~detectors.window_result.EstimatedPerformance`), which the store maps
to the window summary's ``details`` and from which the
``driftline_model_quality`` and ``driftline_model_quality_estimated`` gauges
are set.

Labels
    The store keeps labels and predicted labels as ``str(value)``; they are
    compared as :func:`monitor.labels.stored_label` writes them (as
    :func:`detectors.labels.canonical_label` writes the values), so
    ``"True"`` (a boolean) is ``"true"`` and ``"1.0"`` (an integral float
    label) is ``"1"``: a label record's ``1.0`` matches a predicted ``1``.

Classification (``prediction.task: classification``)
    * ``accuracy``, ``macro_precision``, ``macro_recall``, ``macro_f1`` over
      the joined rows that have a predicted label (scikit-learn's
      ``accuracy_score`` and ``average="macro"`` scores with ``labels=None``,
      ``zero_division=0``); ``accuracy`` keeps its earlier meaning, the share
      of labelled predictions whose label is right;
    * with a positive class, ``precision``, ``recall`` and ``f1`` of that
      class (scikit-learn's ``average="binary"`` with ``pos_label``) when it
      occurs among the labels, and over the rows that have a score:
      ``roc_auc``, ``average_precision`` (the PR AUC summary of
      ``average_precision_score``), ``log_loss``, ``brier_score`` and
      ``expected_calibration_error`` (15 equal-width bins), rows whose label is
      not the positive class being negatives (one-vs-rest). ROC AUC and
      average precision come from 1,000-bin score histograms and differ from
      scikit-learn's by at most ``roc_auc_bound`` and
      ``average_precision_bound`` (reported in the window's
      ``quality_report``; see :mod:`detectors.quality.classification`); the
      other metrics equal scikit-learn's up to float rounding.
    * The positive class is ``prediction.positive_label``, else the fitted
      estimator's (from the reference target), else inferred from the
      window's labels as scikit-learn's ``pos_label=None``; without one
      there are no score metrics.

Regression (``prediction.task: regression``)
    ``mae``, ``rmse``, ``mape``, ``r2``, ``mean_error`` (scikit-learn's
    ``mean_absolute_error``, ``root_mean_squared_error``,
    ``mean_absolute_percentage_error``, ``r2_score``, and the mean of
    ``prediction - label``). The prediction is the score (the predicted label
    as a number when there is no score); rows whose label or prediction is
    not a finite number are skipped and counted. ``mae`` keeps its earlier
    meaning.

Undefined metrics (NaN: one class only, fewer than two rows for R², ...)
are left out of the metrics dict, so no gauge shows them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors.performance import CBPE, CBPESketch
from detectors.quality import BinaryScoreSketch, ClassificationSketch, RegressionSketch
from detectors.window_result import EstimatedPerformance, MeasuredQuality
from monitor.config.service import PredictionSection
from monitor.labels import label_number, stored_label
from monitor.store.rows import JoinedPrediction

__all__ = [
    "ESTIMATED_METRICS",
    "estimated_metrics",
    "estimated_performance",
    "model_quality",
    "sketch_estimate",
]

#: The estimated metrics exported as ``driftline_model_quality_estimated{metric}``.
ESTIMATED_METRICS = ("roc_auc", "accuracy", "f1")
#: Labels taken as positive when none is given, as scikit-learn's ``pos_label=None``.
_DEFAULT_POSITIVES = {
    frozenset({"0", "1"}): "1",
    frozenset({"-1", "1"}): "1",
    frozenset({"false", "true"}): "true",
}


def model_quality(
    prediction: PredictionSection,
    joined: Sequence[JoinedPrediction],
    *,
    estimator: CBPE | None = None,
) -> MeasuredQuality:
    """Return the quality metrics of a window's labelled predictions (module docstring).

    ``estimator`` is the model's fitted performance estimator, whose positive
    class is used when ``prediction.positive_label`` is not set.
    """
    if not joined:
        return MeasuredQuality()
    if prediction.task == "classification":
        positive = prediction.positive or (estimator.positive_label if estimator else None)
        return _classification(joined, positive)
    return _regression(joined)


def _classification(joined: Sequence[JoinedPrediction], positive: str | None) -> MeasuredQuality:
    truth = [stored_label(j.label) for j in joined]
    with_label = [i for i, j in enumerate(joined) if j.predicted_label is not None]
    y_true = [truth[i] for i in with_label]
    y_pred = [stored_label(str(joined[i].predicted_label)) for i in with_label]
    if positive is None:
        positive = _default_positive({*truth, *y_pred})
    metrics: dict[str, float] = {}
    report: dict[str, Any] = {
        "task": "classification",
        "rows": len(joined),
        "predicted_rows": len(with_label),
        "positive_label": positive,
    }
    if with_label:
        labels = ClassificationSketch.from_arrays(y_true, y_pred).metrics()
        metrics |= {
            "accuracy": labels.accuracy,
            "macro_precision": labels.macro_precision,
            "macro_recall": labels.macro_recall,
            "macro_f1": labels.macro_f1,
        }
        report["classes"] = [c.to_dict() for c in labels.classes]
        if positive is not None and positive in {c.label for c in labels.classes}:
            mine = labels.for_label(positive)
            metrics |= {"precision": mine.precision, "recall": mine.recall, "f1": mine.f1}
    scored = [i for i, j in enumerate(joined) if j.score is not None and math.isfinite(j.score)]
    report["scored_rows"] = len(scored) if positive is not None else 0
    if positive is not None and scored:
        scores = np.array([joined[i].score for i in scored], dtype=np.float64)
        is_positive = np.array([truth[i] == positive for i in scored], dtype=bool)
        sketch = BinaryScoreSketch.from_scores(scores, is_positive, positive)
        auc, auc_bound = sketch.roc_auc()
        ap, ap_bound = sketch.average_precision()
        metrics |= {
            "roc_auc": auc,
            "average_precision": ap,
            "log_loss": sketch.log_loss(),
            "brier_score": sketch.brier_score(),
            "expected_calibration_error": sketch.expected_calibration_error(),
        }
        report["roc_auc_bound"] = _json_float(auc_bound)
        report["average_precision_bound"] = _json_float(ap_bound)
    finite = _finite(metrics)
    return MeasuredQuality(metrics=finite, report={**report, "metrics": finite})


def _regression(joined: Sequence[JoinedPrediction]) -> MeasuredQuality:
    targets, predictions = [], []
    for j in joined:
        target = label_number(j.label)
        predicted = j.score if j.score is not None else label_number(j.predicted_label)
        if target is None or predicted is None or not math.isfinite(predicted):
            continue
        targets.append(target)
        predictions.append(predicted)
    report: dict[str, Any] = {
        "task": "regression",
        "rows": len(joined),
        "skipped_rows": len(joined) - len(targets),
    }
    if not targets:
        return MeasuredQuality(report={**report, "metrics": {}})
    m = RegressionSketch.from_arrays(targets, predictions).metrics()
    finite = _finite(
        {"mae": m.mae, "rmse": m.rmse, "mape": m.mape, "r2": m.r2, "mean_error": m.mean_error}
    )
    report["zero_targets"] = m.zero_targets
    return MeasuredQuality(metrics=finite, report={**report, "metrics": finite})


def estimated_performance(
    estimator: CBPE, scores: Sequence[float], window_rows: int
) -> EstimatedPerformance:
    """Return the CBPE estimate of a window from the scores of its predictions.

    Equal to ``estimator.estimate(scores)``; see :func:`sketch_estimate` for the keys.
    """
    return sketch_estimate(
        estimator, estimator.sketch(np.asarray(scores, dtype=np.float64)), window_rows
    )


def sketch_estimate(estimator: CBPE, sketch: CBPESketch, window_rows: int) -> EstimatedPerformance:
    """Return the CBPE estimate of a window from its (merged) :class:`CBPESketch`.

    The estimate's ``rows`` are the scores summarised; ``window_rows`` the
    records in the window's sketch and ``coverage`` their ratio; with the
    estimator's fingerprint and positive class, and whether it calibrates the
    scores.
    """
    return EstimatedPerformance(
        estimate=sketch.estimate(),
        window_rows=window_rows,
        coverage=sketch.rows / window_rows if window_rows else None,
        estimator=estimator.model,
        positive_label=estimator.positive_label,
        calibrated=estimator.calibrator is not None,
    )


def estimated_metrics(estimate: EstimatedPerformance) -> dict[str, float]:
    """The gauge values of an :func:`estimated_performance` result (finite ones only)."""
    metrics = estimate.metrics
    return {name: metrics[name] for name in ESTIMATED_METRICS if name in metrics}


def _default_positive(labels: set[str]) -> str | None:
    present = frozenset(labels)
    for allowed, positive in _DEFAULT_POSITIVES.items():
        if present and present <= allowed:
            return positive
    return None


def _finite(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None

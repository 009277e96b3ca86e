"""Model quality and label-free estimated performance for ``driftline check``.

With ``--target`` and ``--prediction``, ``check`` reports the model's quality
on the reference and, when the current file has the target too, on the current
rows (the ``quality`` key of the JSON output). For a binary classifier whose
prediction column holds scores, it also fits a confidence-based performance
estimator (CBPE) on the labelled reference and estimates ROC AUC, accuracy and
F1 on the current rows from their scores alone (``estimated_performance``):
the number to watch while labels have not arrived, next to the realized value
when they have.

The task is inferred unless the config's ``quality.task`` says it:

* a non-numeric (string or boolean) prediction column is a classifier's labels;
* a numeric prediction column in ``[0, 1]`` with a target of at most two
  distinct values is a binary classifier's score; the predicted label is the
  positive one when ``score >= quality.threshold`` (default 0.5);
* a numeric prediction column whose values all occur among the target's
  (integer class codes) is a classifier's labels;
* anything else is a regression.

The positive label of a binary classifier is ``quality.positive_label``, or
``1``/``true`` when the target's labels lie within {0, 1}, {-1, 1} or
{false, true}. Rows with a missing target or prediction are left out of the
quality metrics (and counted); rows with a missing score are left out of CBPE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.errors import InvalidParameterError
from detectors.labels import canonical_label
from detectors.performance import CBPE
from detectors.quality import ClassificationSketch, RegressionSketch
from monitor.config.drift import QualitySection
from monitor.datafiles import InputError

Task = Literal["binary_scores", "classification", "regression"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckQuality:
    """Realized quality on both files and the CBPE estimate on the current one.

    ``reference`` and ``current`` are the metric dicts of
    :class:`~detectors.quality.ClassificationMetrics` or
    :class:`~detectors.quality.RegressionMetrics` (``current`` is None when the
    current file has no target); ``estimated`` is a
    :class:`~detectors.performance.PerformanceEstimate` dict, or None when the
    task is not a binary classifier with scores. ``notes`` says what was left
    out and why.
    """

    task: Task
    target: str
    prediction: str
    positive_label: str | None
    reference: dict[str, Any]
    current: dict[str, Any] | None
    estimated: dict[str, Any] | None
    calibrated: bool | None
    notes: tuple[str, ...] = field(default=())

    def quality_dict(self) -> dict[str, Any]:
        """Return the ``quality`` key of the JSON output."""
        return {
            "task": self.task,
            "target": self.target,
            "prediction": self.prediction,
            "positive_label": self.positive_label,
            "reference": self.reference,
            "current": self.current,
            "notes": list(self.notes),
        }

    def estimated_dict(self) -> dict[str, Any] | None:
        """Return the ``estimated_performance`` key of the JSON output (None when not estimated)."""
        if self.estimated is None:
            return None
        realized = None
        if self.current is not None:
            realized = {k: self.current.get(k) for k in ("roc_auc", "accuracy")}
            realized["f1"] = positive_f1(self.current, self.positive_label)
        return {
            "method": "cbpe",
            "calibrated": self.calibrated,
            "estimate": self.estimated,
            "realized": realized,
        }


def check_quality(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    target: str,
    prediction: str,
    settings: QualitySection,
) -> CheckQuality:
    """Return realized (and, for a scored binary classifier, estimated) quality.

    Raises :class:`~monitor.datafiles.InputError` with one sentence when the
    columns cannot be scored (no labelled reference rows, a positive label that
    cannot be inferred, a prediction column that is not numeric for a
    regression).
    """
    if prediction not in reference.columns:
        raise InputError(f"prediction column {prediction!r} is not in the reference data")
    notes: list[str] = []
    task = settings.task if settings.task != "auto" else infer_task(reference, target, prediction)
    ref_true, ref_pred = _labelled(reference, target, prediction, "reference", notes)
    if ref_true.empty:
        raise InputError(f"the reference data has no row with both {target!r} and {prediction!r}")
    has_target = target in current.columns
    cur_true, cur_pred = (
        _labelled(current, target, prediction, "current", notes) if has_target else (None, None)
    )
    if not has_target:
        notes.append(f"the current data has no {target!r} column: realized quality not computed")
    try:
        if task == "regression":
            ref_metrics = _regression(ref_true, ref_pred, "reference")
            cur_metrics = (
                _regression(cur_true, cur_pred, "current")
                if cur_true is not None and cur_pred is not None and not cur_true.empty
                else None
            )
            return CheckQuality(
                task=task,
                target=target,
                prediction=prediction,
                positive_label=None,
                reference=ref_metrics,
                current=cur_metrics,
                estimated=None,
                calibrated=None,
                notes=tuple(notes),
            )
        positive = _positive(ref_true, settings.positive_label) if task == "binary_scores" else None
        ref_metrics = _classification(ref_true, ref_pred, task, positive, settings.threshold)
        cur_metrics = (
            _classification(cur_true, cur_pred, task, positive, settings.threshold)
            if cur_true is not None and cur_pred is not None and not cur_true.empty
            else None
        )
        estimated, calibrated = None, None
        if task == "binary_scores":
            estimator = CBPE.fit(
                ref_true.map(canonical_label),
                ref_pred.to_numpy(dtype=np.float64),
                positive,
                threshold=settings.threshold,
            )
            scores = pd.to_numeric(current[prediction], errors="coerce")
            finite = scores[np.isfinite(scores.to_numpy(dtype=np.float64))]
            if len(finite) < len(scores):
                notes.append(f"{len(scores) - len(finite)} current rows without a score left out")
            estimated = estimator.estimate(finite.to_numpy(dtype=np.float64)).to_dict()
            calibrated = estimator.calibrator is not None
    except InvalidParameterError as exc:
        raise InputError(f"cannot compute the model's quality: {exc}") from exc
    return CheckQuality(
        task=task,
        target=target,
        prediction=prediction,
        positive_label=positive,
        reference=ref_metrics,
        current=cur_metrics,
        estimated=estimated,
        calibrated=calibrated,
        notes=tuple(notes),
    )


def infer_task(reference: pd.DataFrame, target: str, prediction: str) -> Task:
    """Return the task the columns describe (the rule is in the module docstring)."""
    predicted = reference[prediction].dropna()
    truth = reference[target].dropna()
    if not pd.api.types.is_numeric_dtype(predicted) or pd.api.types.is_bool_dtype(predicted):
        return "classification"
    values = predicted.to_numpy(dtype=np.float64)
    labels = {canonical_label(v) for v in truth.unique()}
    in_unit = bool(values.size) and values.min() >= 0 and values.max() <= 1
    codes = set(map(canonical_label, np.unique(values)))
    if len(labels) <= 2 and in_unit and not codes <= labels:
        return "binary_scores"
    if not pd.api.types.is_numeric_dtype(truth) or pd.api.types.is_bool_dtype(truth):
        return "classification"
    if codes <= labels:
        return "classification"
    return "regression"


def _labelled(
    frame: pd.DataFrame, target: str, prediction: str, role: str, notes: list[str]
) -> tuple[pd.Series, pd.Series]:
    """The target and prediction of the rows that have both (finite when numeric)."""
    truth, predicted = frame[target], frame[prediction]
    keep = truth.notna() & predicted.notna()
    if pd.api.types.is_numeric_dtype(predicted) and not pd.api.types.is_bool_dtype(predicted):
        keep &= np.isfinite(predicted.to_numpy(dtype=np.float64, na_value=np.nan))
    dropped = int((~keep).sum())
    if dropped:
        notes.append(f"{dropped} {role} rows without a target or a prediction left out")
    return truth[keep].reset_index(drop=True), predicted[keep].reset_index(drop=True)


def _positive(truth: pd.Series, configured: str | None) -> str:
    labels = sorted({canonical_label(v) for v in truth.unique()})
    if configured is not None:
        return canonical_label(configured)
    for allowed, positive in (
        ({"0", "1"}, "1"),
        ({"-1", "1"}, "1"),
        ({"false", "true"}, "true"),
    ):
        if set(labels) <= allowed:
            return positive
    raise InputError(
        f"the target's labels {labels} need quality.positive_label in the config "
        "to say which one the score is the probability of"
    )


def _classification(
    truth: pd.Series, predicted: pd.Series, task: Task, positive: str | None, threshold: float
) -> dict[str, Any]:
    y_true = truth.map(canonical_label)
    if task == "binary_scores":
        scores = predicted.to_numpy(dtype=np.float64)
        labels = sorted(set(y_true) | ({positive} if positive is not None else set()))
        negative = next((label for label in labels if label != positive), f"not {positive}")
        y_pred = pd.Series(negative, index=y_true.index, dtype=object)
        y_pred[scores >= threshold] = positive
        sketch = ClassificationSketch.from_arrays(y_true, y_pred, scores, positive)
    else:
        sketch = ClassificationSketch.from_arrays(y_true, predicted.map(canonical_label))
    return sketch.metrics().to_dict()


def _regression(truth: pd.Series, predicted: pd.Series, role: str) -> dict[str, Any]:
    y_true = pd.to_numeric(truth, errors="coerce")
    y_pred = pd.to_numeric(predicted, errors="coerce")
    if y_true.isna().any() or y_pred.isna().any():
        raise InputError(
            f"the {role} target and prediction must be numbers for a regression's quality"
        )
    return RegressionSketch.from_arrays(y_true, y_pred).metrics().to_dict()


def positive_f1(metrics: dict[str, Any], positive: str | None) -> float | None:
    """Return the F1 of the ``positive`` label in a classification metrics dict (None if absent)."""
    for entry in metrics.get("classes", []):
        if entry.get("label") == positive:
            value = entry.get("f1")
            return None if value is None else float(value)
    return None

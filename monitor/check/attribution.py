"""SHAP attribution drift and the drift-impact ranking for ``driftline check --model``.

``--model PATH`` names a scikit-learn, LightGBM or XGBoost model saved with
joblib. Loading it runs code from the file (pickle), so only pass a file you
trust; driftline loads no model path from data, requests or records.

Each side is explained on a seeded sample of at most ``attribution.max_rows``
rows (default 2,000) with :func:`monitor.analyses.explain.explain`: shap's
TreeExplainer for tree ensembles, otherwise a sampled explainer with a
background drawn from the reference. The per-feature mean ``|SHAP|`` of the
two samples is compared by :func:`detectors.attribution.attribution_drift`,
and every drift-tested feature gets an impact: its effect size (KS distance
or total variation, in [0, 1]) times its share of the reference's mean
``|SHAP|``. ``check`` orders its features by that impact: the drift that moves
the model's output comes first, drift in a feature the model ignores last.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from detectors.attribution import (
    AttributionDriftReport,
    AttributionSummary,
    DriftImpact,
    attribution_drift,
    comparable_statistics,
    drift_impact_ranking,
)
from detectors.drift import DriftReport
from monitor.analyses.attribution import sample_rows
from monitor.config.drift import AttributionSection
from monitor.datafiles import InputError


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckAttribution:
    """The attribution drift of the two files and the features ranked by drift impact."""

    model: str
    explainer: str
    output: str
    positive_class: Any
    explained_reference: int
    explained_current: int
    report: AttributionDriftReport
    ranking: tuple[DriftImpact, ...]

    def attribution_dict(self) -> dict[str, Any]:
        """Return the ``attribution`` key of the JSON output."""
        return {
            "model": self.model,
            "explainer": self.explainer,
            "output": self.output,
            "positive_class": None if self.positive_class is None else str(self.positive_class),
            "explained_rows": {
                "reference": self.explained_reference,
                "current": self.explained_current,
            },
            **self.report.to_dict(),
        }

    def ranking_list(self) -> list[dict[str, Any]]:
        """Return the ``drift_impact`` key of the JSON output, largest impact first."""
        return [d.to_dict() for d in self.ranking]


def check_attribution(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    model_path: str | Path,
    drift: DriftReport,
    settings: AttributionSection,
    *,
    exclude: tuple[str, ...] = (),
) -> CheckAttribution:
    """Explain both files with the model at ``model_path``; compare and rank (see the module doc).

    ``exclude`` names columns that are not model inputs (target, prediction)
    when the model does not record its input names. Raises
    :class:`~monitor.datafiles.InputError` when the model cannot be loaded or its
    input columns are not in both files.
    """
    from monitor.analyses.explain import ModelLoadError, explain, load_model

    try:
        model = load_model(model_path)
    except ModelLoadError as exc:
        raise InputError(str(exc)) from exc
    names = getattr(model, "feature_names_in_", None)
    columns = (
        [str(n) for n in names]
        if names is not None
        else [c for c in reference.columns if c not in exclude]
    )
    for role, frame in (("reference", reference), ("current", current)):
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise InputError(f"the model's input columns {absent} are not in the {role} data")
    ref_rows = sample_rows(reference[columns], settings.max_rows, settings.seed)
    cur_rows = sample_rows(current[columns], settings.max_rows, settings.seed + 1)
    try:
        ref_shap = explain(model, ref_rows, background=ref_rows, seed=settings.seed)
        cur_shap = explain(model, cur_rows, background=ref_rows, seed=settings.seed)
    except (ValueError, TypeError) as exc:
        raise InputError(f"cannot explain the data with the model {model_path}: {exc}") from exc
    ref_summary = AttributionSummary.from_values(ref_shap.values)
    report = attribution_drift(
        ref_summary,
        AttributionSummary.from_values(cur_shap.values),
        threshold=settings.threshold,
        alpha=settings.alpha,
        share_threshold=settings.share_threshold,
    )
    ranking = drift_impact_ranking(comparable_statistics(drift), ref_summary.importance())
    return CheckAttribution(
        model=str(model_path),
        explainer=ref_shap.explainer,
        output=ref_shap.output,
        positive_class=ref_shap.positive_class,
        explained_reference=len(ref_shap.values),
        explained_current=len(cur_shap.values),
        report=report,
        ranking=ranking,
    )

"""Attribution (SHAP) drift of the service's windows, and their drift-impact ranking.

A model with an ``attribution`` section (:class:`monitor.config.service.AttributionWindowSection`)
gets two more results in each evaluated window
(:class:`~detectors.window_result.WindowResult`):

* ``attribution``: :func:`detectors.attribution.attribution_drift` of the
  window's SHAP summary against the reference's (the report's ``rows`` are
  the rows explained on each side) with its ``source``;
* ``drift_impact``: the features ranked by drift statistic x reference
  importance (:func:`detectors.attribution.drift_impact_ranking` over
  :func:`~detectors.attribution.comparable_statistics` of the window's drift
  report), largest first -- the order in which to look at drifted features.

The reference's summary is built once, by :func:`reference_attribution` when
the reference is stored, and kept with the profile. A window's summary is:

``source: explanations``
    the merge of the per-partial summaries of the records' ``explanations``
    (:func:`records_attribution`): every record that carries explanations,
    exactly, whatever the partitioning. Records without them are not counted.
``source: model``
    the configured model explaining the window's row sample
    (:class:`WindowExplainer`), which the partials keep for this purpose
    (see :mod:`detectors.sample`; at most ``window_rows`` rows are explained).
    The sample stores what the drift tests see, not the raw record: numeric
    features as floats, categorical features as the code of a reference
    category. :func:`sample_frame` decodes it back to labels (``"true"`` and
    ``"false"`` to booleans, integral labels to ints), so a label outside the
    reference's ``max_categories`` most frequent ones, or never seen in the
    reference, reaches the model as missing (``None``). Send ``explanations``
    from the serving side when that matters, or when the model is not a tree
    ensemble: the sampled explainer costs about 16 ms per row on a 2-core
    machine, and it runs in the evaluator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from detectors.attribution import (
    AttributionSummary,
    DriftImpact,
    attribution_drift,
    comparable_statistics,
    drift_impact_ranking,
)
from detectors.drift import DriftReport
from detectors.sample import RowSample
from detectors.sketch import CategoricalSpec, FeatureSpec
from detectors.window_result import AnalysisError, AttributionDrift

if TYPE_CHECKING:  # annotations only: importing monitor.config.service loads kafka-python
    from monitor.config.service import AttributionWindowSection, ModelConfig
    from monitor.records import PredictionRecord

__all__ = [
    "WindowExplainer",
    "explanation_columns",
    "records_attribution",
    "reference_attribution",
    "sample_frame",
    "sample_rows",
    "window_attribution",
]

log = logging.getLogger(__name__)


def explanation_columns(config: ModelConfig, columns: Sequence[str]) -> list[str]:
    """Return the reference columns that hold SHAP values (``reference_prefix`` + feature)."""
    section = config.attribution
    if section is None:
        return []
    return [c for c in columns if c.startswith(section.reference_prefix)]


def reference_attribution(
    config: ModelConfig, frame: pd.DataFrame, features: Sequence[str]
) -> AttributionSummary | None:
    """Return the SHAP summary of the reference ``frame`` (None without ``attribution``).

    From the frame's ``reference_prefix`` columns when it has any, else from
    the configured model explaining at most ``max_rows`` rows of
    ``features``. Raises ``ValueError`` naming the fix when neither exists or
    the model cannot explain the rows.
    """
    section = config.attribution
    if section is None:
        return None
    prefixed = explanation_columns(config, [str(c) for c in frame.columns])
    if prefixed:
        values = frame[prefixed].apply(pd.to_numeric, errors="coerce")
        values.columns = [c[len(section.reference_prefix) :] for c in prefixed]
        return AttributionSummary.from_values(values)
    if section.model is None:
        raise ValueError(
            f"model {config.name!r}: attribution needs the reference's SHAP values: add columns "
            f"named {section.reference_prefix!r} + feature to the reference file, or set "
            "attribution.model to explain it with the model"
        )
    from monitor.analyses.explain import ModelLoadError, explain, load_model

    try:
        model = load_model(section.model)
        rows = sample_rows(frame[list(features)], section.max_rows, section.seed)
        shap = explain(model, rows, background=rows, seed=section.seed)
    except (ModelLoadError, ValueError, TypeError) as error:
        raise ValueError(
            f"model {config.name!r}: cannot explain the reference with {section.model}: {error}"
        ) from error
    return AttributionSummary.from_values(shap.values)


def sample_rows(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Return at most ``rows`` rows of ``frame``, a seeded sample (pandas' ``sample``) beyond.

    ``check --model`` draws its rows the same way, so the service's reference
    summary of a file equals the one ``check`` computes with the same seed.
    """
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def records_attribution(records: Sequence[PredictionRecord]) -> AttributionSummary:
    """Return the summary of the records' ``explanations`` (records without them not counted)."""
    explained = [r.explanations for r in records if r.explanations]
    if not explained:
        return AttributionSummary.empty()
    frame = pd.DataFrame.from_records(explained).astype(np.float64)
    return AttributionSummary.from_values(frame.rename(columns=str))


def sample_frame(sample: RowSample, specs: dict[str, FeatureSpec]) -> pd.DataFrame:
    """Return the rows of a row sample as model input (see the module docstring).

    Numeric columns are floats (NaN when missing); categorical codes become
    their reference labels, decoded from text to booleans, ints or floats
    where the label is one, and ``None`` when missing or outside the
    reference's categories.
    """
    columns: dict[str, Any] = {}
    for j, name in enumerate(sample.columns):
        values = sample.values[:, j]
        spec = specs[name]
        if not isinstance(spec, CategoricalSpec):
            columns[name] = values
            continue
        labels = [_label_value(label) for label in spec.categories]
        columns[name] = pd.Series(
            [
                labels[int(code)] if not math.isnan(code) and code < len(labels) else None
                for code in values
            ],
            dtype=object,
        )
    return pd.DataFrame(columns)


def _label_value(label: str) -> Any:
    """The value a canonical label was made from (``"true"`` -> True, ``"3"`` -> 3, ...)."""
    if label in ("true", "false"):
        return label == "true"
    try:
        return int(label)
    except ValueError:
        pass
    try:
        return float(label)
    except ValueError:
        return label


class WindowExplainer:
    """Explains windows' row samples with one model file, loaded on first use and kept."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._model: Any = None

    def summary(
        self,
        sample: RowSample,
        specs: dict[str, FeatureSpec],
        background: RowSample | None,
        section: AttributionWindowSection,
    ) -> AttributionSummary:
        """Return the SHAP summary of at most ``section.window_rows`` rows of ``sample``.

        ``background`` (the reference's row sample) is the sampled
        explainer's background; tree ensembles need none. Raises
        ``ValueError`` when the model cannot be loaded or cannot explain the rows.
        """
        from monitor.analyses.explain import ModelLoadError, explain, load_model

        if self._model is None:
            try:
                self._model = load_model(self.path)
            except ModelLoadError as error:
                raise ValueError(str(error)) from error
        rows = sample_frame(sample, specs)
        reference = None if background is None else sample_frame(background, specs)
        try:
            shap = explain(
                self._model,
                rows,
                background=reference,
                max_rows=section.window_rows,
                max_tree_rows=section.window_rows,
                seed=section.seed,
            )
        except TypeError as error:
            raise ValueError(str(error)) from error
        return AttributionSummary.from_values(shap.values)


def window_attribution(
    section: AttributionWindowSection,
    reference: AttributionSummary | None,
    current: AttributionSummary,
    drift: DriftReport,
) -> tuple[AttributionDrift | AnalysisError, tuple[DriftImpact, ...]]:
    """Return the window's attribution drift and drift-impact ranking (module docstring).

    Without a reference summary, or without a single explained row in the
    window, the attribution is an :class:`AnalysisError` (and without a
    reference summary the ranking is empty).
    """
    if reference is None:
        return AnalysisError(
            message="the reference profile was stored without SHAP values: store a new "
            "reference (driftline reference build) with attribution configured"
        ), ()
    ranking = drift_impact_ranking(comparable_statistics(drift), reference.importance())
    if current.rows == 0:
        error = (
            "no record of the window has explanations"
            if section.source == "explanations"
            else "the window has no row to explain"
        )
        return AnalysisError(message=error, source=section.source), ranking
    report = attribution_drift(
        reference,
        current,
        threshold=section.threshold,
        alpha=section.alpha,
        share_threshold=section.share_threshold,
        min_samples=section.min_samples,
    )
    return AttributionDrift(source=section.source, report=report), ranking

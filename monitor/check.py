"""``driftline check``: a batch drift report of a current data file against a reference file.

It runs the service's own path (reference profile, sketch of the current
rows, the configured methods), so a window holding the same rows gives the
same answer in the service.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pandas as pd

from detectors.drift import (
    PARALLEL_ROWS,
    DriftReport,
    FeatureDrift,
    compare_frames,
    compare_sketches,
)
from detectors.kinds import check_compatible, infer_kinds
from detectors.profile import ReferenceProfile
from detectors.quality import DataQualityReport, data_quality
from monitor.drift_config import CheckConfig
from monitor.tables import InputError, read_table

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    # --model, --multivariate and --target with --prediction import their modules when
    # asked for: a plain check does not pay for them (see tests/test_check_imports.py).
    from detectors.multivariate import MultivariateResult
    from monitor.check_attribution import CheckAttribution
    from monitor.check_quality import CheckQuality

#: Terminals narrower than this get the compact feature table (no vertical borders).
NARROW_TERMINAL = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A drift report, the current data's quality checks, and the model's quality if asked for.

    ``quality`` is set when both ``--target`` and ``--prediction`` were given.
    """

    report: DriftReport
    missing_columns: tuple[str, ...]
    target: str | None
    data_quality: DataQualityReport
    quality: CheckQuality | None = None
    attribution: CheckAttribution | None = None
    multivariate: tuple[MultivariateResult, ...] | None = None

    def ordered_features(self) -> tuple[FeatureDrift, ...]:
        """The features in output order: by drift impact with ``--model``, else by severity."""
        by_severity = self.report.by_severity()
        if self.attribution is None:
            return by_severity
        rank = {d.name: i for i, d in enumerate(self.attribution.ranking)}
        return tuple(sorted(by_severity, key=lambda f: rank.get(f.name, len(rank))))

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object printed by ``--format json``.

        The contract's keys (``dataset_drift``, ``drift_share``, ``features``,
        ...) come first and keep their shapes; ``data_quality``, ``quality`` and
        ``estimated_performance`` are added beside them (null when not computed).
        """
        payload = self.report.to_dict()
        payload["missing_columns"] = list(self.missing_columns)
        payload["target"] = self.target
        payload["data_quality"] = self.data_quality.to_dict()
        payload["quality"] = None if self.quality is None else self.quality.quality_dict()
        payload["estimated_performance"] = (
            None if self.quality is None else self.quality.estimated_dict()
        )
        if self.attribution is not None:
            by_name = {f["name"]: f for f in payload["features"]}
            payload["features"] = [by_name[f.name] for f in self.ordered_features()]
        payload["attribution"] = (
            None if self.attribution is None else self.attribution.attribution_dict()
        )
        payload["drift_impact"] = (
            None if self.attribution is None else self.attribution.ranking_list()
        )
        payload["multivariate"] = (
            None if self.multivariate is None else [r.to_dict() for r in self.multivariate]
        )
        return payload

    @property
    def multivariate_drift(self) -> bool:
        """True when a multivariate method found drift (``--fail-on-drift`` counts it)."""
        return any(r.drift for r in self.multivariate or ())

    @property
    def drift_found(self) -> bool:
        """True when the dataset, the prediction or the joint distribution drifted."""
        prediction = self.report.prediction
        return (
            self.report.dataset_drift
            or bool(prediction and prediction.drift)
            or self.multivariate_drift
        )


def run_check(
    reference_path: str | Path,
    current_path: str | Path,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
    model: str | Path | None = None,
    multivariate: bool = False,
    exact: bool = False,
) -> CheckResult:
    """Read both files, validate them against each other and compare them.

    Raises :class:`~monitor.tables.InputError` with one sentence for bad input,
    and ``ColumnTypeError`` when a column changed type between the files.
    """
    reference = read_table(reference_path, "reference")
    current = read_table(current_path, "current")
    return check_frames(
        reference,
        current,
        config,
        target=target,
        prediction=prediction,
        model=model,
        multivariate=multivariate,
        exact=exact,
    )


def check_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
    model: str | Path | None = None,
    multivariate: bool = False,
    exact: bool = False,
) -> CheckResult:
    """Like :func:`run_check`, on data frames already in memory."""
    for role, column in (("target", target), ("prediction", prediction)):
        if column is not None and column not in reference.columns:
            raise InputError(f"{role} column {column!r} is not in the reference data")
    ignored = set(config.columns.ignore) | ({target} if target else set())
    shared = [c for c in reference.columns if c in set(current.columns) and c not in ignored]
    if not shared:
        raise InputError("the reference and current data share no columns to compare")
    missing = tuple(c for c in reference.columns if c not in current.columns and c not in ignored)
    if prediction is not None and prediction in missing:
        raise InputError(f"prediction column {prediction!r} is not in the current data")
    overrides = {k: v for k, v in config.columns.kinds.items() if k in shared}
    kinds = infer_kinds(reference[shared], overrides)
    if not kinds:
        raise InputError("no column of the reference data can be monitored (all empty or dates)")
    for name, kind in kinds.items():
        check_compatible(name, kind, current[name])
    columns = list(kinds)
    settings = config.drift.settings()
    large = max(len(reference), len(current)) >= PARALLEL_ROWS
    threads = min(4, os.cpu_count() or 1) if large else 1
    # The service's path: a reference profile and the sketch of the current rows.
    profile = ReferenceProfile.from_frame(
        reference[columns], kinds, bins=config.drift.bins, threads=threads
    )
    sketch = profile.sketch(current[columns], threads=threads)
    if exact:
        report = compare_frames(
            reference[columns],
            current[columns],
            settings,
            kinds=kinds,
            prediction=prediction,
            exact=True,
            bins=config.drift.bins,
        )
    else:
        report = compare_sketches(profile, sketch, settings, prediction=prediction)
    current_columns = [c for c in current.columns if c not in ignored]
    quality = None
    if target is not None and prediction is not None:
        from monitor.check_quality import check_quality

        quality = check_quality(
            reference, current, target=target, prediction=prediction, settings=config.quality
        )
    attribution = None
    if model is not None:
        from monitor.check_attribution import check_attribution

        not_inputs = tuple(c for c in (target, prediction) if c is not None)
        attribution = check_attribution(
            reference, current, model, report, config.attribution, exclude=not_inputs
        )
    joint = None
    if multivariate:
        from monitor.check_multivariate import check_multivariate

        features = [c for c in columns if c != prediction]
        joint = check_multivariate(profile, reference, current, features, config.multivariate)
    return CheckResult(
        report=report,
        missing_columns=missing,
        target=target,
        data_quality=data_quality(profile, sketch, current_columns=current_columns),
        quality=quality,
        attribution=attribution,
        multivariate=joint,
    )


def to_json(result: CheckResult) -> bytes:
    """Return the ``--format json`` output (one object, newline-terminated)."""
    return orjson.dumps(result.to_dict(), option=orjson.OPT_APPEND_NEWLINE)


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if value != 0 and (abs(value) < 10**-digits or abs(value) >= 10**6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _row(f: FeatureDrift) -> list[str]:
    verdict = (
        "[bold red]DRIFT[/]"
        if f.drift
        else ("[yellow]too few rows[/]" if f.status != "ok" else "[green]ok[/]")
    )
    return [
        f.name,
        f.kind.value,
        f.method,
        _number(f.statistic),
        _number(f.p_value),
        _number(f.threshold),
        _number(f.effect_size, 3),
        f"{f.missing_share:.1%}",
        verdict,
    ]


def render_table(result: CheckResult, console: Console) -> None:
    """Print the report as a table, most severe drift first, with a one-line verdict."""
    # rich is imported where a table is drawn: `--format json` does without it.
    from rich import box
    from rich.table import Table

    report = result.report
    order = "by drift impact" if result.attribution is not None else "most severe first"
    # Below 100 columns the bordered table squeezed kind and method to nothing: drop the
    # vertical borders and the effect column (it stays in the JSON), shorten the kind.
    narrow = console.width < NARROW_TERMINAL
    table = Table(
        title=f"Feature drift ({order})",
        title_justify="left",
        box=None if narrow else box.HEAVY_HEAD,
        pad_edge=not narrow,
        header_style="bold underline" if narrow else "bold",
    )
    columns = [
        ("feature", "left"),
        ("kind", "left"),
        ("method", "left"),
        ("statistic", "right"),
        ("p-value", "right"),
        ("threshold", "right"),
        ("effect", "right"),
        ("missing", "right"),
        ("drift", "left"),
    ]
    shown = [c for c in columns if not (narrow and c[0] == "effect")]
    for header, justify in shown:
        table.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    impact = {} if result.attribution is None else {d.name: d for d in result.attribution.ranking}
    if impact:
        table.add_column("impact", justify="right", no_wrap=True)
    for feature in result.ordered_features():
        cells = _row(feature)
        if narrow:
            cells[1] = cells[1][:3]  # "num", "cat"
            del cells[6]  # effect
        if impact:
            known = impact.get(feature.name)
            cells.append(_number(known.impact if known else None, 3))
        table.add_row(*cells)
    console.print(table)
    if report.prediction is not None:
        p = report.prediction
        state = "DRIFT" if p.drift else "no drift"
        console.print(
            f"Prediction {p.name!r}: {state} ({p.method} = {_number(p.statistic)}, "
            f"p = {_number(p.p_value)}, threshold {_number(p.threshold)})"
        )
    drifted = sum(f.drift for f in report.features)
    evaluated = sum(f.status == "ok" for f in report.features)
    verdict = "[bold red]DATASET DRIFT[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {drifted} of {evaluated} features drifted "
        f"(share {report.drift_share:.2f}, threshold {report.drift_share_threshold:.2f}; "
        f"{report.rows_reference:,} reference rows, {report.rows_current:,} current rows, "
        f"correction {report.correction.value})"
    )
    if result.missing_columns:
        console.print(f"Not in the current data: {', '.join(result.missing_columns)}")
    failed = result.data_quality.failed
    if failed:
        console.print(
            "[yellow]Data quality:[/] "
            + "; ".join(
                f"{c.check.value}{f' {c.feature!r}' if c.feature else ''} "
                f"{_number(c.value)} > {_number(c.threshold)}"
                for c in failed
            )
        )
    else:
        console.print("[green]Data quality: every check passed[/]")
    if result.multivariate is not None:
        console.print(multivariate_table(result.multivariate))
    if result.attribution is not None:
        console.print(attribution_table(result.attribution))
    if result.quality is not None:
        console.print(quality_table(result.quality))
        for note in result.quality.notes:
            console.print(f"  note: {note}")


#: Metrics shown in the quality table, per task, in order.
_QUALITY_ROWS = {
    "classification": ("accuracy", "macro_precision", "macro_recall", "macro_f1"),
    "binary_scores": (
        "accuracy",
        "f1",
        "macro_f1",
        "roc_auc",
        "average_precision",
        "log_loss",
        "brier_score",
        "expected_calibration_error",
    ),
    "regression": ("mae", "rmse", "mape", "r2", "mean_error"),
}


def quality_table(quality: CheckQuality) -> Table:
    """Return the model-quality table: reference, current (realized) and estimated values."""
    from rich.table import Table

    table = Table(title=f"Model quality ({quality.task})", title_justify="left")
    table.add_column("metric")
    for header in ("reference", "current", "estimated (CBPE)"):
        table.add_column(header, justify="right")
    estimated = quality.estimated or {}
    for metric in _QUALITY_ROWS[quality.task]:
        table.add_row(
            metric,
            _number(_metric(quality.reference, metric, quality.positive_label)),
            _number(_metric(quality.current, metric, quality.positive_label)),
            _number(estimated.get(metric)) if metric in ("accuracy", "f1", "roc_auc") else "",
        )
    return table


def _metric(metrics: dict[str, Any] | None, name: str, positive: str | None) -> float | None:
    """A metric from a quality dict; ``f1`` is the positive label's F1."""
    if metrics is None:
        return None
    if name == "f1":
        from monitor.check_quality import positive_f1

        return positive_f1(metrics, positive)
    value = metrics.get(name)
    return None if value is None else float(value)


def attribution_table(attribution: CheckAttribution) -> Table:
    """Return the SHAP attribution table: mean |SHAP| per feature on each side, drifted first."""
    from rich.table import Table

    report = attribution.report
    title = (
        f"Attribution drift ({attribution.explainer} explainer, "
        f"{attribution.explained_reference:,} / {attribution.explained_current:,} rows explained; "
        f"importance shares moved {_number(report.share_distance, 3)})"
    )
    table = Table(title=title, title_justify="left")
    for header in ("feature", "mean |SHAP| ref", "mean |SHAP| cur", "change", "p-value", "drift"):
        table.add_column(header, justify="left" if header == "feature" else "right")
    for f in report.by_change():
        verdict = "[bold red]DRIFT[/]" if f.drift else ("ok" if f.status == "ok" else f.status)
        table.add_row(
            f.name,
            _number(f.reference_mean_abs),
            _number(f.current_mean_abs),
            f"{f.relative_change:+.1%}" if math.isfinite(f.relative_change) else "-",
            _number(f.p_value),
            verdict,
        )
    return table


def multivariate_table(results: tuple[MultivariateResult, ...]) -> Table:
    """Return the multivariate drift table: one row per method."""
    from rich.table import Table

    table = Table(title="Multivariate drift (row samples)", title_justify="left")
    for header in ("method", "statistic", "p-value", "threshold", "rows ref/cur", "drift"):
        table.add_column(header, justify="left" if header == "method" else "right")
    for r in results:
        table.add_row(
            r.method,
            _number(r.statistic),
            _number(r.p_value),
            _number(r.threshold),
            f"{r.n_reference:,}/{r.n_current:,}",
            "[bold red]DRIFT[/]" if r.drift else "ok",
        )
    return table

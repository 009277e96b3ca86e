"""``driftline check`` on a terminal: drift, data and model quality, attribution, joint drift."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from detectors.drift import FeatureDrift

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    # --model, --multivariate and --target with --prediction import their modules when
    # asked for: a plain check does not pay for them (see tests/test_check_imports.py).
    from detectors.multivariate import MultivariateResult
    from monitor.check.attribution import CheckAttribution
    from monitor.check.quality import CheckQuality
    from monitor.check.run import CheckResult


#: Terminals narrower than this get the compact feature table (no vertical borders).
NARROW_TERMINAL = 100


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    if value != 0 and (abs(value) < 10**-digits or abs(value) >= 10**6):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _row(f: FeatureDrift) -> list[str]:
    if f.drift:
        verdict = "[bold red]DRIFT[/]"
    elif f.status != "ok":
        verdict = "[yellow]too few rows[/]"
    elif f.detectable:
        verdict = "[dim]not material[/]"  # a real but small change: see min_effect_size
    else:
        verdict = "[green]ok[/]"
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
    small = [f for f in report.features if f.detectable and not f.material]
    verdict = "[bold red]DATASET DRIFT[/]" if report.dataset_drift else "[green]no dataset drift[/]"
    console.print(
        f"{verdict}: {drifted} of {evaluated} features drifted "
        f"(share {report.drift_share:.2f}, threshold {report.drift_share_threshold:.2f}; "
        f"{report.rows_reference:,} reference rows, {report.rows_current:,} current rows, "
        f"correction {report.correction.value})"
    )
    if small:
        console.print(
            f"Detectable but not material (effect size below min_effect_size with "
            f"confidence): {', '.join(f'{f.name} ({_number(f.effect_size, 3)})' for f in small)}"
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
        from monitor.check.quality import positive_f1

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

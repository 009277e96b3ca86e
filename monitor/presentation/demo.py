"""The demo's live table: one row per evaluated window, the columns it drops when narrow."""

from __future__ import annotations

from detectors.quality import DataQualityReport
from detectors.window_result import EstimatedPerformance, WindowResult
from monitor.presentation.windows import (
    Column,
    attribution_cell,
    changes_cell,
    impact_cell,
    joint_cell,
)

#: The live table's columns; ``drop`` > 0 are left out (highest first) on narrow terminals.
COLUMNS = (
    Column("window", min_width=5),
    Column("rows", 4, "right"),
    Column("drift", min_width=5),
    Column("share", 4, "right"),
    Column("drifted features", min_width=11),
    Column("pred.", 3),
    Column("data quality", 3),
    Column("joint", min_width=7),
    Column("attrib.", min_width=7),
    Column("top impact", 1, min_width=11),
    Column("changes", min_width=8),
    Column("accuracy", justify="right", min_width=8),
    Column("est. acc.", justify="right", min_width=5),
    Column("labelled", 2, "right"),
)


def window_cells(result: WindowResult, index: int, injected: bool) -> list[str]:
    """One evaluated window (number ``index``; ``injected``: drift injected) as :data:`COLUMNS`."""
    drifted = [f.name for f in result.drifted_features]
    checks = result.data_quality
    failed = (
        sorted({f"{c.check.value}:{c.feature}" for c in checks.failed})
        if isinstance(checks, DataQualityReport)
        else []
    )
    quality = result.quality.metrics
    estimate = result.estimated_performance
    estimated = estimate.metrics if isinstance(estimate, EstimatedPerformance) else {}
    prediction = result.prediction_drift
    return [
        f"#{index}" + (" *" if injected else ""),
        f"{result.rows:,}",
        "[bold red]YES[/]" if result.dataset_drift else "no",
        f"{result.drift_share:.2f}",
        ", ".join(drifted) or "-",
        "-" if prediction is None else ("[red]DRIFT[/]" if prediction.drift else "ok"),
        "-" if checks is None else ("[red]" + ", ".join(failed) + "[/]" if failed else "ok"),
        joint_cell(result),
        attribution_cell(result),
        impact_cell(result, drifted),
        changes_cell(result),
        f"{quality['accuracy']:.1%}" if "accuracy" in quality else "-",
        f"{estimated['accuracy']:.1%}" if "accuracy" in estimated else "-",
        f"{result.labelled}",
    ]


__all__ = ["COLUMNS", "window_cells"]

"""``driftline check``: a batch drift report of a current data file against a reference file.

It runs the service's own path (reference profile, sketch of the current
rows, the configured methods), so a window holding the same rows gives the
same answer in the service.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from rich.console import Console
from rich.table import Table

from detectors.drift import DriftReport, FeatureDrift, compare_frames
from detectors.kinds import check_compatible, infer_kinds
from monitor.drift_config import CheckConfig
from monitor.tables import InputError, read_table


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """A drift report and the columns that could not be compared."""

    report: DriftReport
    missing_columns: tuple[str, ...]
    target: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON object printed by ``--format json``."""
        payload = self.report.to_dict()
        payload["missing_columns"] = list(self.missing_columns)
        payload["target"] = self.target
        return payload

    @property
    def drift_found(self) -> bool:
        """True when the dataset drifted or the prediction drifted (``--fail-on-drift``)."""
        prediction = self.report.prediction
        return self.report.dataset_drift or bool(prediction and prediction.drift)


def run_check(
    reference_path: str | Path,
    current_path: str | Path,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
    exact: bool = False,
) -> CheckResult:
    """Read both files, validate them against each other and compare them.

    Raises :class:`~monitor.tables.InputError` with one sentence for bad input,
    and ``ColumnTypeError`` when a column changed type between the files.
    """
    reference = read_table(reference_path, "reference")
    current = read_table(current_path, "current")
    return check_frames(
        reference, current, config, target=target, prediction=prediction, exact=exact
    )


def check_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: CheckConfig,
    *,
    target: str | None = None,
    prediction: str | None = None,
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
    report = compare_frames(
        reference[columns],
        current[columns],
        config.drift.settings(),
        kinds=kinds,
        prediction=prediction,
        exact=exact,
        bins=config.drift.bins,
    )
    return CheckResult(report=report, missing_columns=missing, target=target)


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
    report = result.report
    table = Table(title="Feature drift (most severe first)", title_justify="left")
    for header, justify, no_wrap in (
        ("feature", "left", True),
        ("kind", "left", False),
        ("method", "left", False),
        ("statistic", "right", True),
        ("p-value", "right", True),
        ("threshold", "right", True),
        ("effect", "right", True),
        ("missing", "right", True),
        ("drift", "left", True),
    ):
        table.add_column(header, justify=justify, no_wrap=no_wrap)  # type: ignore[arg-type]
    for feature in report.by_severity():
        table.add_row(*_row(feature))
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

"""Terminal and JSON rendering of evaluated windows (``replay``, ``demo``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from monitor.evaluate import WindowOutcome
from monitor.replay import ReplayResult


def when(epoch: float) -> str:
    """Return an epoch time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def window_row(outcome: WindowOutcome) -> list[str]:
    """One window as table cells: start, rows, verdict, drift share, drifted, prediction."""
    summary, report = outcome.summary, outcome.report
    if report is None:
        return [when(summary.window_start), f"{summary.rows:,}", "too few rows", "-", "-", "-"]
    drifted = ", ".join(f.name for f in report.drifted) or "-"
    prediction = "-"
    if report.prediction is not None:
        prediction = "DRIFT" if report.prediction.drift else "ok"
    verdict = "[bold red]DRIFT[/]" if report.dataset_drift else "ok"
    return [
        when(summary.window_start),
        f"{summary.rows:,}",
        verdict,
        f"{report.drift_share:.2f}",
        drifted,
        prediction,
    ]


def windows_table(outcomes: list[WindowOutcome], title: str) -> Table:
    """Return a table of windows, oldest first."""
    table = Table(title=title, title_justify="left")
    for header in ("window start (UTC)", "rows", "dataset", "drift share", "drifted", "prediction"):
        table.add_column(header)
    for outcome in outcomes:
        table.add_row(*window_row(outcome))
    return table


def print_windows(result: ReplayResult, console: Console) -> None:
    """Print a replay's windows and its record counts."""
    console.print(windows_table(result.windows, "Windows"))
    invalid = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.invalid.items()))
    console.print(
        f"{result.counted:,} records in windows, {result.late:,} late, "
        f"{sum(result.invalid.values()):,} invalid{f' ({invalid})' if invalid else ''}"
    )


def windows_json(result: ReplayResult) -> bytes:
    """Return a replay's windows as one JSON object (each window's report in check's format)."""
    windows: list[dict[str, Any]] = []
    for outcome in result.windows:
        summary = outcome.summary
        windows.append(
            {
                "model": summary.model,
                "start": summary.window_start,
                "end": summary.window_end,
                "rows": summary.rows,
                "status": summary.status,
                "report": None if outcome.report is None else outcome.report.to_dict(),
            }
        )
    payload = {
        "records": result.counted,
        "late": result.late,
        "invalid": dict(result.invalid),
        "windows": windows,
    }
    return orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE)

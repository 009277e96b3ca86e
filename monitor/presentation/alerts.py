"""``driftline alerts ...`` on a terminal: incidents, events, backtests.

Their JSON (the CLI's ``--format json`` and the API's) is in
:mod:`monitor.alerting.operator`, one mapper per row type.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from alerts.backtest import BacktestReport
from alerts.events import iso_utc
from monitor.store.alerting import EventDelivery
from monitor.store.rows import IncidentRow


def incidents_table(rows: list[IncidentRow]) -> Table:
    """The incidents as a table, most recently updated first."""
    table = Table(title="Incidents", title_justify="left")
    for header in ("model", "rule", "feature", "severity", "status", "since", "until", "retrain"):
        table.add_column(header)
    for row in rows:
        until = "-" if row.resolved_window_end is None else iso_utc(row.resolved_window_end)
        if row.reason:
            until += f" ({row.reason.replace('_', ' ')})"
        status = "[red]firing[/]" if row.status == "firing" else "resolved"
        table.add_row(
            row.model,
            row.rule,
            row.subject or "-",
            row.severity,
            status,
            iso_utc(row.started_window_start),
            until,
            "yes" if row.retrain_requested else "-",
        )
    return table


def events_table(deliveries: list[EventDelivery]) -> Table:
    """The events, newest first, with where each target's delivery stands."""
    table = Table(title="Events", title_justify="left")
    for header in ("id", "type", "model", "rule", "feature", "created", "delivery"):
        table.add_column(header)
    for d in deliveries:
        e = d.event
        targets = ", ".join(f"{r.target}: {r.state} ({r.attempts})" for r in d.outbox) or "-"
        table.add_row(
            e.event_id, e.type, e.model, e.rule, e.subject or "-", iso_utc(e.created_at), targets
        )
    return table


def print_backtest(report: BacktestReport, console: Console) -> None:
    """Print a backtest: what each rule would have done, then the events in order."""
    counts = Table(title=f"Backtest over {report.windows} windows", title_justify="left")
    for header in (
        "model",
        "rule",
        "breaching",
        "unknown",
        "fired",
        "repeats",
        "resolved",
        "retrain",
    ):
        counts.add_column(header, justify="left" if header in ("model", "rule") else "right")
    for c in report.counts:
        counts.add_row(
            c.model,
            c.rule,
            f"{c.windows_breaching}/{c.windows}",
            str(c.windows_unknown),
            str(c.fired),
            str(c.repeats),
            str(c.resolved),
            str(c.retrain),
        )
    console.print(counts)
    if not report.emissions:
        console.print("No rule would have fired.")
        return
    events = Table(title="Events that would have been sent", title_justify="left")
    for header in ("window", "type", "rule", "feature", "severity", "summary"):
        events.add_column(header)
    for e in report.emissions:
        events.add_row(
            iso_utc(e.window_start), e.type, e.rule, e.subject or "-", e.severity, e.summary
        )
    console.print(events)


__all__ = [
    "events_table",
    "incidents_table",
    "print_backtest",
]

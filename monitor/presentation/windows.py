"""Terminal and JSON rendering of evaluated windows (``replay``, ``demo``).

Besides the drift verdicts, a window's result may hold joint (multivariate)
drift, attribution drift with its drift-impact ranking, and online change
points (see :mod:`detectors.window_result`). The ``*_cell`` functions
turn each into one short table cell, ``"-"`` when the window has no such
result (the model's config lacks the section, or the window had too few
rows); :func:`fitted_table` leaves out the least important columns when a
table would not fit the terminal. The JSON output carries the full results
under :data:`DETAIL_KEYS`, as the store writes them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console, JustifyMethod
from rich.table import Table

from detectors.window_result import AnalysisError, ChangePoint, WindowResult
from monitor.store.result_json import window_details

if TYPE_CHECKING:  # a type only: importing the replay would load the service
    from monitor.service.replay import ReplayResult

#: The window ``details`` keys of the joint, attribution and change-detection results.
DETAIL_KEYS = ("multivariate", "attribution", "drift_impact", "change_detection")
#: Short names of the multivariate methods in the ``joint`` cell.
METHOD_ABBREVIATIONS = {"pca_reconstruction": "pca", "mmd": "mmd", "domain_classifier": "clf"}


def when(epoch: float) -> str:
    """Return an epoch time as ``YYYY-MM-DD HH:MM:SS`` UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def clock(epoch: float) -> str:
    """Return an epoch time as ``HH:MM:SS`` UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S")


def joint_cell(result: WindowResult) -> str:
    """``no``, or the (abbreviated) multivariate methods that found joint drift."""
    joint = result.joint_drift
    if joint is None:
        return "-"
    if isinstance(joint, AnalysisError):
        return "[yellow]error[/]"
    flagged = [METHOD_ABBREVIATIONS.get(m, m) for m in joint.flagged]
    return f"[red]{' '.join(flagged)}[/]" if flagged else "no"


def attribution_cell(result: WindowResult) -> str:
    """``no``, or the feature whose attribution (mean |SHAP|) moved most, ``+N`` more drifted.

    ``shares`` when no single feature drifted but the shares of importance did.
    """
    attribution = result.attribution
    if attribution is None:
        return "-"
    if isinstance(attribution, AnalysisError):
        return "[yellow]error[/]"
    if not attribution.drift:
        return "no"
    # Largest relative change first (by_change order).
    drifted = [f.name for f in attribution.report.drifted]
    if not drifted:
        return "[red]shares[/]"
    more = f" +{len(drifted) - 1}" if len(drifted) > 1 else ""
    return f"[red]{drifted[0]}{more}[/]"


def impact_cell(result: WindowResult, drifted: Collection[str] | None = None) -> str:
    """The feature of largest drift impact (drift statistic x reference importance).

    Dimmed when ``drifted`` (the window's drifted features) does not hold it: the
    top of the ranking of a window without drift is only the largest noise.
    """
    ranking = result.drift_impact
    if not ranking or math.isnan(ranking[0].impact):
        return "-"
    name = ranking[0].name
    return f"[dim]{name}[/]" if drifted is not None and name not in drifted else name


def first_changes(result: WindowResult) -> dict[str, tuple[ChangePoint, int]]:
    """Per stream with a change point: the earliest one (any detector) and how many were found.

    The count is the largest ``n_changes`` of the stream's detectors.
    """
    found = result.change_detection
    return {} if found is None else found.first_changes()


def changes_cell(result: WindowResult) -> str:
    """The first change point found in the window, as ``HH:MM:SS`` (``#index`` without a time).

    ``+N`` counts further changes; a stream's name precedes its change when
    more than one stream ran. ``no``: the streams had points but no change;
    ``-``: no points (no labels yet for the error stream) or not configured.
    """
    found = result.change_detection
    streams = {} if found is None else found.streams
    cells = []
    for stream, (change, total) in first_changes(result).items():
        time = change.event_time
        text = clock(time) if time is not None else f"#{change.index}"
        text += f" +{total - 1}" if total > 1 else ""
        cells.append(f"{stream} {text}" if len(streams) > 1 else text)
    if cells:
        return "[red]" + ", ".join(cells) + "[/]"
    return "no" if any(r.points for r in streams.values()) else "-"


@dataclass(frozen=True, slots=True)
class Column:
    """A table column; ``drop`` > 0: hidden when the table is too wide, highest first.

    ``min_width``: the narrowest rich may wrap the column to (None: rich's choice,
    which may truncate words with an ellipsis).
    """

    header: str
    drop: int = 0
    justify: JustifyMethod = "left"
    min_width: int | None = None


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    console: Console | None,
    **options: Any,
) -> Table:
    """Return a table of ``rows`` that fits ``console``'s width, leaving out columns if need be.

    Columns are left out by decreasing ``drop`` (all of a level at once) until
    the table's natural width fits; columns with ``drop == 0`` always stay,
    their cells wrapped to fit (see :func:`_narrow`). Without ``console``
    every column is kept.
    ``options`` go to :class:`rich.table.Table`.
    """
    levels = sorted({c.drop for c in columns if c.drop > 0}, reverse=True)
    for limit in [max(levels, default=0) + 1, *levels]:
        shown = [k for k, c in enumerate(columns) if c.drop < limit]
        table = Table(**options)
        for k in shown:
            column = columns[k]
            table.add_column(column.header, justify=column.justify, min_width=column.min_width)
        for row in rows:
            table.add_row(*(row[k] for k in shown))
        if console is None or _natural_width(console, table) <= console.width:
            return table
    if console is not None:
        _narrow(table, console)
    return table


def _narrow(table: Table, console: Console) -> None:
    """Fix the widths of wrapping columns so that ``table`` fits ``console``, if it can.

    Rich would shrink every column evenly, below what their words need, and
    crop the table; here the column with the most room to wrap (down to its
    longest word or ``min_width``) gives up one character at a time.
    """
    unlimited = console.options.update_width(1_000_000)
    excess = _natural_width(console, table) - console.width
    widths, least = [], []
    for column in table.columns:
        cells = [console.measure(c, options=unlimited) for c in (column.header, *column.cells)]
        widths.append(max(m.maximum for m in cells))
        least.append(max(column.min_width or 0, *(m.minimum for m in cells)))
    narrowed = set()
    while excess > 0:
        k = max(range(len(widths)), key=lambda j: widths[j] - least[j])
        if widths[k] <= least[k]:
            break
        widths[k] -= 1
        narrowed.add(k)
        excess -= 1
    for k in narrowed:
        table.columns[k].width = widths[k]


def _natural_width(console: Console, table: Table) -> int:
    """The width ``table`` takes without wrapping any cell (not capped by the console's)."""
    return console.measure(table, options=console.options.update_width(1_000_000)).maximum


def window_row(result: WindowResult) -> list[str]:
    """One window as the cells of :data:`WINDOW_COLUMNS`."""
    report = result.drift
    if report is None:
        verdict, share, drifted, prediction = "too few rows", "-", "-", "-"
        impact = "-"
    else:
        verdict = "[bold red]DRIFT[/]" if report.dataset_drift else "ok"
        share = f"{report.drift_share:.2f}"
        drifted = ", ".join(f.name for f in report.drifted) or "-"
        prediction = "-"
        if report.prediction is not None:
            prediction = "DRIFT" if report.prediction.drift else "ok"
        impact = impact_cell(result, {f.name for f in report.drifted})
    return [
        when(result.window_start),
        f"{result.rows:,}",
        verdict,
        share,
        drifted,
        prediction,
        joint_cell(result),
        attribution_cell(result),
        impact,
        changes_cell(result),
    ]


def _present(result: WindowResult) -> set[str]:
    """The optional columns' keys that ``result`` has a value for."""
    present = set()
    if result.joint_drift is not None:
        present.add("multivariate")
    if result.attribution is not None:
        present.update(("attribution", "drift_impact"))
    if result.change_detection is not None:
        present.add("change_detection")
    return present


#: The columns of :func:`windows_table`, each with the result it shows (None: always shown;
#: the others only when some window has that result).
WINDOW_COLUMNS: tuple[tuple[Column, str | None], ...] = (
    (Column("window start (UTC)"), None),
    (Column("rows", justify="right"), None),
    (Column("dataset"), None),
    (Column("drift share", 3, "right"), None),
    (Column("drifted"), None),
    (Column("prediction", 2), None),
    (Column("joint", 1), "multivariate"),
    (Column("attrib.", 1), "attribution"),
    (Column("top impact", 2), "drift_impact"),
    (Column("changes", 1), "change_detection"),
)


def windows_table(results: list[WindowResult], title: str, console: Console | None = None) -> Table:
    """Return a table of windows, oldest first, fitted to ``console``'s width when given."""
    present = set().union(*map(_present, results)) if results else set()
    keep = [k for k, (_, key) in enumerate(WINDOW_COLUMNS) if key is None or key in present]
    columns = [WINDOW_COLUMNS[k][0] for k in keep]
    rows = [[cells[k] for k in keep] for cells in map(window_row, results)]
    return fitted_table(columns, rows, console, title=title, title_justify="left")


def print_windows(result: ReplayResult, console: Console) -> None:
    """Print a replay's windows and its record counts."""
    console.print(windows_table(result.windows, "Windows", console))
    invalid = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.invalid.items()))
    console.print(
        f"{result.counted:,} records in windows, {result.late:,} late, "
        f"{sum(result.invalid.values()):,} invalid{f' ({invalid})' if invalid else ''}"
    )


def windows_json(result: ReplayResult) -> bytes:
    """Return a replay's windows as one JSON object (each window's report in check's format).

    A window also holds the :data:`DETAIL_KEYS` its model's config produces
    (joint drift, attribution drift and drift impact, change points), as stored.
    """
    windows: list[dict[str, Any]] = []
    for window in result.windows:
        details = window_details(window)
        windows.append(
            {
                "model": window.model,
                "start": window.window_start,
                "end": window.window_end,
                "rows": window.rows,
                "status": window.status,
                "report": None if window.drift is None else window.drift.to_dict(),
                **{k: details[k] for k in DETAIL_KEYS if k in details},
            }
        )
    payload = {
        "records": result.counted,
        "late": result.late,
        "invalid": dict(result.invalid),
        "windows": windows,
    }
    return orjson.dumps(payload, option=orjson.OPT_APPEND_NEWLINE)

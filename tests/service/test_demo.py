"""``driftline demo``: the whole service on the embedded broker finds the injected drift.

Also the rendering of the demo's (and replay's) window tables: the joint-drift,
attribution, drift-impact and change-point cells, and columns left out or
wrapped on narrow terminals.
"""

from __future__ import annotations

import io
import re
import socket
from typing import Any

import orjson
import pytest
from rich import box
from rich.console import Console

from monitor.demo import COLUMNS, DRIFTED, T0, WINDOW_S, DemoPlan, run_demo
from monitor.evaluate import WindowOutcome
from monitor.replay import ReplayResult
from monitor.report import (
    attribution_cell,
    changes_cell,
    clock,
    first_changes,
    fitted_table,
    impact_cell,
    joint_cell,
    windows_json,
    windows_table,
)
from monitor.store.rows import WindowSummaryRow


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.mark.integration
def test_demo_detects_injected_drift_and_leaves_nothing_running():
    # 600 rows a window, as the demo: the error stream's change point needs its ~480 labels.
    plan = DemoPlan(windows=6, per_window=600, drift_from=3)
    output = io.StringIO()
    summaries = run_demo(plan, timeout_s=120, console=Console(file=output, width=120))
    evaluated = {round((s.window_start - T0) / WINDOW_S): s for s in summaries}
    # Every window but the last (which the watermark never passes) is evaluated.
    assert set(evaluated) >= set(range(plan.windows - 1))
    clean, drifted = range(plan.drift_from), range(plan.drift_from, plan.windows - 1)
    for index in clean:
        details = evaluated[index].details
        assert not evaluated[index].dataset_drift, index
        assert details["attribution"]["drift"] is False, (index, details["attribution"])
        # No change point in the error stream where the outcome never flips.
        assert details["change_detection"]["streams"]["error"]["points"] > 0, index
        assert first_changes(details) == {}, (index, details["change_detection"])
    # Each joint-drift method errs at its alpha (1%) by design -- pca_reconstruction at about
    # 4% a window on this data -- so one false alarm among the clean windows is tolerated (the
    # seeded data has none); a broken comparison would flag every clean window.
    false_alarms = [
        (index, method["method"])
        for index in clean
        for method in evaluated[index].details["multivariate"]["methods"]
        if method["drift"]
    ]
    assert len(false_alarms) <= 1, false_alarms
    for index in drifted:
        details = evaluated[index].details
        assert evaluated[index].dataset_drift, index
        # Income and utilization shift and tenure no longer follows age: every method sees it.
        assert details["multivariate"]["drift"] is True, index
        assert all(m["drift"] for m in details["multivariate"]["methods"]), details["multivariate"]
        # The model's attribution moves with the shifted features, and only with them.
        moved = {f["name"] for f in details["attribution"]["features"] if f["drift"]}
        assert moved, (index, details["attribution"])
        assert moved <= set(DRIFTED), (index, details["attribution"])
        assert details["drift_impact"][0]["name"] in DRIFTED, details["drift_impact"]
    # The outcome flips halfway through window drift_from: ADWIN finds it there, after the flip.
    onset = evaluated[plan.drift_from]
    assert onset.details["labelled"] > 0.7 * plan.per_window, "its labels were not all counted"
    change, _ = first_changes(onset.details)["error"]
    assert onset.window_start + WINDOW_S / 2 < change["event_time"] < onset.window_end
    for index in drifted[1:]:
        assert first_changes(evaluated[index].details) == {}, index

    text = output.getvalue()
    assert "drift injected into income and utilization" in text
    assert re.search(r"joint +attrib\. +top impact +changes", text), text
    onset_row = re.search(rf"#{plan.drift_from} \*.*", text)
    assert onset_row is not None
    assert "pca mmd" in onset_row.group()
    assert clock(change["event_time"]) in onset_row.group()
    # The demo's broker and HTTP API are gone once it returns.
    broker = re.search(r"Broker 127\.0\.0\.1:(\d+)", text)
    api = re.search(r"API http://127\.0\.0\.1:(\d+)", text)
    assert broker is not None
    assert api is not None
    assert not listening("127.0.0.1", int(broker.group(1)))
    assert not listening("127.0.0.1", int(api.group(1)))


# --- the table cells -------------------------------------------------------------------------

START = T0 + 6 * WINDOW_S


def joint(*flags: tuple[str, bool]) -> dict[str, Any]:
    return {
        "drift": any(f for _, f in flags),
        "methods": [{"method": m, "drift": f} for m, f in flags],
    }


def attribution(*features: tuple[str, bool], share_drift: bool = False) -> dict[str, Any]:
    drift = share_drift or any(f for _, f in features)
    listed = [{"name": n, "drift": f} for n, f in features]
    return {
        "source": "explanations",
        "drift": drift,
        "share_drift": share_drift,
        "features": listed,
    }


def changes(**streams: list[tuple[int, float | None]]) -> dict[str, Any]:
    return {
        "streams": {
            name: {
                "points": 480,
                "detectors": {
                    "adwin": {
                        "changes": [{"index": i, "event_time": t} for i, t in found],
                        "n_changes": len(found),
                        "detected": bool(found),
                    }
                },
            }
            for name, found in streams.items()
        }
    }


def test_joint_cell_names_the_methods_that_flagged():
    assert joint_cell({}) == "-"
    assert joint_cell({"multivariate": {"error": "no sample"}}) == "[yellow]error[/]"
    assert (
        joint_cell({"multivariate": joint(("pca_reconstruction", False), ("mmd", False))}) == "no"
    )
    flagged = joint(("pca_reconstruction", True), ("mmd", False), ("domain_classifier", True))
    assert joint_cell({"multivariate": flagged}) == "[red]pca clf[/]"


def test_attribution_cell_names_the_largest_change_and_counts_the_rest():
    assert attribution_cell({}) == "-"
    assert attribution_cell({"attribution": {"error": "no explanations"}}) == "[yellow]error[/]"
    assert attribution_cell({"attribution": attribution(("age", False))}) == "no"
    # Features come drifted first, largest relative change first (AttributionDriftReport order).
    moved = attribution(("income", True), ("utilization", True), ("age", False))
    assert attribution_cell({"attribution": moved}) == "[red]income +1[/]"
    shares = attribution(("age", False), share_drift=True)
    assert attribution_cell({"attribution": shares}) == "[red]shares[/]"


def test_impact_cell_is_the_top_of_the_ranking_dimmed_when_it_did_not_drift():
    ranking = [
        {"name": "utilization", "statistic": 0.3, "importance": 0.3, "impact": 0.09},
        {"name": "income", "statistic": 0.25, "importance": 0.2, "impact": 0.05},
    ]
    assert impact_cell({}) == "-"
    assert impact_cell({"drift_impact": ranking}) == "utilization"
    assert impact_cell({"drift_impact": ranking}, {"income", "utilization"}) == "utilization"
    assert impact_cell({"drift_impact": ranking}, set()) == "[dim]utilization[/]"


def test_changes_cell_shows_the_first_change_as_a_time_or_an_index():
    assert changes_cell({}) == "-"
    no_points = {"streams": {"error": {"points": 0, "detectors": {}}}}
    assert changes_cell({"change_detection": no_points}) == "-"
    assert changes_cell({"change_detection": changes(error=[])}) == "no"
    found = changes(error=[(350, START + 39.0), (120, START + 21.5)])
    assert changes_cell({"change_detection": found}) == "[red]08:06:21 +1[/]"
    assert first_changes({"change_detection": found})["error"][0]["index"] == 120
    untimed = changes(error=[(300, None)], score=[])
    assert changes_cell({"change_detection": untimed}) == "[red]error #300[/]"


def window(index: int, drift: bool) -> list[str]:
    """The demo table's cells (:data:`monitor.demo.COLUMNS`) of a clean or a drifted window."""
    if not drift:
        clean = ["no", "0.00", "-", "ok", "ok", "no", "no", "[dim]age[/]", "no", "66.5%"]
        return [f"#{index}", "600", *clean, "67.0%", "484"]
    return [
        f"#{index} *",
        "600",
        "[bold red]YES[/]",
        "0.33",
        "income, utilization",
        "ok",
        "ok",
        "[red]pca mmd[/]",
        "[red]income +1[/]",
        "utilization",
        "[red]08:06:39[/]",
        "53.7%",
        "67.0%",
        "484",
    ]


@pytest.mark.parametrize("width", [200, 120, 80])
def test_demo_table_fits_the_terminal_and_keeps_the_new_columns(width):
    console = Console(file=io.StringIO(), width=width)
    rows = [window(5, False), window(6, True), window(10, True)]
    console.print(fitted_table(COLUMNS, rows, console, box=box.SIMPLE_HEAD, collapse_padding=True))
    text = console.file.getvalue()
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width, text
    header = " ".join(lines[:3])
    for shown in ("window", "drift", "joint", "attrib.", "changes", "accuracy", "est."):
        assert shown in header, (shown, text)
    # Nothing that matters is cut short: the change time, the methods, the accuracies.
    for kept in ("08:06:39", "53.7%", "67.0%", "pca", "mmd", "utilization"):
        assert kept in text, (kept, text)
    # The least useful columns go first: always 600 rows, a share beside the verdict, ...
    left_out = {
        200: set(),
        120: {"rows", "share", "pred.", "data quality"},
        80: {"rows", "share", "pred.", "data quality", "top impact", "labelled"},
    }[width]
    for optional in ("rows", "share", "pred.", "data quality", "top impact", "labelled"):
        assert (optional in header) is (optional not in left_out), (optional, text)


def test_replay_table_and_json_carry_the_new_details():
    details = {
        "multivariate": joint(("pca_reconstruction", True), ("mmd", True)),
        "attribution": attribution(("income", True)),
        "drift_impact": [{"name": "income", "statistic": 0.3, "importance": 0.3, "impact": 0.09}],
        "change_detection": changes(error=[(200, START + 30.0)]),
        "quality": {},
    }
    summary = WindowSummaryRow(
        model="credit-risk",
        window_start=START,
        window_end=START + WINDOW_S,
        rows=10,
        status="insufficient_data",
        dataset_drift=False,
        drift_share=0.0,
        details=details,
    )
    result = ReplayResult(counted=10, windows=[WindowOutcome(summary, None)])
    console = Console(file=io.StringIO(), width=200)
    console.print(windows_table(result.windows, "Windows", console))
    text = console.file.getvalue()
    assert re.search(r"joint +┃ attrib\. +┃ top impact +┃ changes", text), text
    for shown in ("pca mmd", "income", "08:06:30"):
        assert shown in text, (shown, text)
    (window_json,) = orjson.loads(windows_json(result))["windows"]
    for key in ("multivariate", "attribution", "drift_impact", "change_detection"):
        assert window_json[key] == details[key]
    assert "quality" not in window_json
    # Without those details (sections not configured) the columns are left out.
    plain = WindowOutcome(
        WindowSummaryRow(
            model="m",
            window_start=START,
            window_end=START + WINDOW_S,
            rows=10,
            status="insufficient_data",
            dataset_drift=False,
            drift_share=0.0,
        ),
        None,
    )
    console = Console(file=io.StringIO(), width=200)
    console.print(windows_table([plain], "Windows", console))
    assert "joint" not in console.file.getvalue()
    assert (
        "multivariate"
        not in orjson.loads(windows_json(ReplayResult(windows=[plain])))["windows"][0]
    )

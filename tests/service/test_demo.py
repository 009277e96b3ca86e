"""``driftline demo``: the whole service on the embedded broker finds the injected drift.

Also the rendering of the demo's (and replay's) window tables: the joint-drift,
attribution, drift-impact and change-point cells, and columns left out or
wrapped on narrow terminals.
"""

from __future__ import annotations

import io
import re
import socket
from collections import Counter
from typing import Any

import orjson
import pytest
from rich import box
from rich.console import Console

from alerts.events import event_from_json
from detectors.attribution import DriftImpact
from detectors.window_result import (
    AnalysisError,
    AttributionDrift,
    ChangeDetection,
    ChangePoint,
    DetectorChanges,
    JointDrift,
    StreamChanges,
    WindowResult,
)
from monitor.demo.service import DRIFTED, T0, WINDOW_S, DemoPlan, run_demo
from monitor.presentation.demo import COLUMNS
from monitor.presentation.windows import (
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
from monitor.service.replay import ReplayResult
from monitor.store.result_json import window_details
from tests.test_metrics import attribution_drift, joint_drift


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


@pytest.mark.integration
def test_demo_detects_injected_drift_and_leaves_nothing_running():
    # 600 rows a window, as the demo: the error stream's change point needs its ~480 labels.
    # Nine windows: the retraining that the drift triggers deploys model version 2 a window
    # or two later, and a window after that must still be evaluated.
    plan = DemoPlan(windows=9, per_window=600, drift_from=3)
    output = io.StringIO()
    outcome = run_demo(plan, timeout_s=120, console=Console(file=output, width=120))
    summaries = outcome.windows
    evaluated = {round((s.window_start - T0) / WINDOW_S): s for s in summaries}
    # Every window but the last (which the watermark never passes) is evaluated.
    assert set(evaluated) >= set(range(plan.windows - 1))
    clean, drifted = range(plan.drift_from), range(plan.drift_from, plan.windows - 1)
    # Windows on model version 1's reference drift; those on version 2's (fitted on the recent
    # data by the demo's job runner after the retraining request) do not.
    retrained = [i for i in drifted if evaluated[i].profile_version == 2]
    assert retrained, {i: evaluated[i].profile_version for i in drifted}
    assert outcome.retrained_from == evaluated[retrained[0]].window_start
    assert retrained == list(range(retrained[0], plan.windows - 1))
    for index in retrained:
        assert not evaluated[index].dataset_drift, index
    drifted = range(plan.drift_from, retrained[0])
    assert len(drifted) >= 2, "the drift share fires after two drifted windows"
    for index in clean:
        details = window_details(evaluated[index])
        assert not evaluated[index].dataset_drift, index
        assert details["attribution"]["drift"] is False, (index, details["attribution"])
        # No change point in the error stream where the outcome never flips.
        assert details["change_detection"]["streams"]["error"]["points"] > 0, index
        assert first_changes(evaluated[index]) == {}, (index, details["change_detection"])
    # Each joint-drift method errs at its alpha (1%) by design -- pca_reconstruction at about
    # 4% a window on this data -- so one false alarm among the clean windows is tolerated (the
    # seeded data has none); a broken comparison would flag every clean window.
    false_alarms = [
        (index, method["method"])
        for index in clean
        for method in window_details(evaluated[index])["multivariate"]["methods"]
        if method["drift"]
    ]
    assert len(false_alarms) <= 1, false_alarms
    for index in drifted:
        details = window_details(evaluated[index])
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
    assert onset.labelled > 0.7 * plan.per_window, "its labels were not all counted"
    change, _ = first_changes(onset)["error"]
    assert change.event_time is not None
    assert onset.window_start + WINDOW_S / 2 < change.event_time < onset.window_end
    for index in drifted[1:]:
        assert first_changes(evaluated[index]) == {}, index

    # Alerts: the dataset drift fires once (after two drifted windows) with one retraining
    # request; every event reached the demo's receiver once, each signature verified.
    kinds = Counter((e.type, e.rule) for e in outcome.events)
    assert kinds[("drift.detected", "drift_share")] == 1, kinds
    assert kinds[("retrain.requested", "drift_share")] == 1, kinds
    assert {e.subject for e in outcome.events if e.rule == "feature_drift"} <= set(DRIFTED)
    assert outcome.received.ids == {e.event_id for e in outcome.events}
    assert outcome.received.rejected == 0
    assert [r["type"] for r in outcome.received.retrain] == ["retrain.requested"]
    # Version 2 took over: version 1's incidents ended with reason model_replaced.
    resolved = [event_from_json(e.payload) for e in outcome.events if e.type == "alert.resolved"]
    assert ("drift_share", "model_replaced") in {(e.rule, e.details["reason"]) for e in resolved}
    assert "It fitted model version 2 on recent data" in output.getvalue()

    text = output.getvalue()
    assert "drift injected into income and utilization" in text
    assert re.search(r"Alerts: \d+ events", text), text
    assert re.search(r"joint +attrib\. +top impact +changes", text), text
    onset_row = re.search(rf"#{plan.drift_from} \*.*", text)
    assert onset_row is not None
    assert "pca mmd" in onset_row.group()
    assert clock(change.event_time) in onset_row.group()
    # The demo's broker and HTTP API are gone once it returns.
    broker = re.search(r"Broker 127\.0\.0\.1:(\d+)", text)
    api = re.search(r"API http://127\.0\.0\.1:(\d+)", text)
    assert broker is not None
    assert api is not None
    assert not listening("127.0.0.1", int(broker.group(1)))
    assert not listening("127.0.0.1", int(api.group(1)))


# --- the table cells -------------------------------------------------------------------------

START = T0 + 6 * WINDOW_S


def result(**fields: Any) -> WindowResult:
    """A window's result with only ``fields`` set (as a window of too few rows, or drifted)."""
    base: dict[str, Any] = {
        "model": "credit-risk",
        "window_start": START,
        "window_end": START + WINDOW_S,
        "rows": 10,
        "status": "insufficient_data",
        "profile_version": 1,
    }
    return WindowResult(**(base | fields))


def joint(*flags: tuple[str, bool]) -> JointDrift:
    """Joint drift of each ``(method, drift)`` (statistic 1.0)."""
    return joint_drift(*((m, 1.0, f) for m, f in flags))


def attribution(*features: tuple[str, bool], share_drift: bool = False) -> AttributionDrift:
    """Attribution drift of ``features``, listed by decreasing relative change."""
    count = len(features)
    return attribution_drift(
        *((n, 0.1 * (2 + count - k), f) for k, (n, f) in enumerate(features)),
        share_drift=share_drift,
    )


def ranked(*rows: tuple[str, float, float, float]) -> tuple[DriftImpact, ...]:
    return tuple(DriftImpact(name=n, statistic=s, importance=i, impact=x) for n, s, i, x in rows)


def changes(points: int = 480, **streams: list[tuple[int, float | None]]) -> ChangeDetection:
    return ChangeDetection(
        max_points=100_000,
        parameters={"adwin": {"delta": 0.002}},
        streams={
            name: StreamChanges(
                points=points,
                skipped=0,
                dropped=0,
                first_event_time=None,
                last_event_time=None,
                detectors={
                    "adwin": DetectorChanges(
                        points=points,
                        changes=tuple(ChangePoint(index=i, event_time=t) for i, t in found),
                        n_changes=len(found),
                        detected=bool(found),
                    )
                },
            )
            for name, found in streams.items()
        },
    )


def test_joint_cell_names_the_methods_that_flagged():
    assert joint_cell(result()) == "-"
    assert joint_cell(result(joint_drift=AnalysisError(message="no sample"))) == "[yellow]error[/]"
    assert (
        joint_cell(result(joint_drift=joint(("pca_reconstruction", False), ("mmd", False)))) == "no"
    )
    flagged = joint(("pca_reconstruction", True), ("mmd", False), ("domain_classifier", True))
    assert joint_cell(result(joint_drift=flagged)) == "[red]pca clf[/]"


def test_attribution_cell_names_the_largest_change_and_counts_the_rest():
    assert attribution_cell(result()) == "-"
    failed = AnalysisError(message="no explanations", source="explanations")
    assert attribution_cell(result(attribution=failed)) == "[yellow]error[/]"
    assert attribution_cell(result(attribution=attribution(("age", False)))) == "no"
    # Features come drifted first, largest relative change first (AttributionDriftReport order).
    moved = attribution(("income", True), ("utilization", True), ("age", False))
    assert attribution_cell(result(attribution=moved)) == "[red]income +1[/]"
    shares = attribution(("age", False), share_drift=True)
    assert attribution_cell(result(attribution=shares)) == "[red]shares[/]"


def test_impact_cell_is_the_top_of_the_ranking_dimmed_when_it_did_not_drift():
    ranking = result(
        drift_impact=ranked(("utilization", 0.3, 0.3, 0.09), ("income", 0.25, 0.2, 0.05))
    )
    assert impact_cell(result()) == "-"
    assert impact_cell(ranking) == "utilization"
    assert impact_cell(ranking, {"income", "utilization"}) == "utilization"
    assert impact_cell(ranking, set()) == "[dim]utilization[/]"


def test_changes_cell_shows_the_first_change_as_a_time_or_an_index():
    assert changes_cell(result()) == "-"
    no_points = changes(points=0, error=[])
    assert changes_cell(result(change_detection=no_points)) == "-"
    assert changes_cell(result(change_detection=changes(error=[]))) == "no"
    found = changes(error=[(350, START + 39.0), (120, START + 21.5)])
    assert changes_cell(result(change_detection=found)) == "[red]08:06:21 +1[/]"
    assert first_changes(result(change_detection=found))["error"][0].index == 120
    untimed = changes(error=[(300, None)], score=[])
    assert changes_cell(result(change_detection=untimed)) == "[red]error #300[/]"


def window(index: int, drift: bool) -> list[str]:
    """The demo table's cells (:data:`monitor.presentation.demo.COLUMNS`) of one window."""
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
    window = result(
        joint_drift=joint(("pca_reconstruction", True), ("mmd", True)),
        attribution=attribution(("income", True)),
        drift_impact=ranked(("income", 0.3, 0.3, 0.09)),
        change_detection=changes(error=[(200, START + 30.0)]),
    )
    details = window_details(window)
    replayed = ReplayResult(counted=10, windows=[window])
    console = Console(file=io.StringIO(), width=200)
    console.print(windows_table(replayed.windows, "Windows", console))
    text = console.file.getvalue()
    assert re.search(r"joint +┃ attrib\. +┃ top impact +┃ changes", text), text
    for shown in ("pca mmd", "income", "08:06:30"):
        assert shown in text, (shown, text)
    (window_json,) = orjson.loads(windows_json(replayed))["windows"]
    for key in ("multivariate", "attribution", "drift_impact", "change_detection"):
        assert window_json[key] == details[key]
    assert "quality" not in window_json
    # Without those details (sections not configured) the columns are left out.
    plain = result(model="m")
    console = Console(file=io.StringIO(), width=200)
    console.print(windows_table([plain], "Windows", console))
    assert "joint" not in console.file.getvalue()
    assert (
        "multivariate"
        not in orjson.loads(windows_json(ReplayResult(windows=[plain])))["windows"][0]
    )

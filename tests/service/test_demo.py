"""``driftline demo``: the whole service on the embedded broker finds the injected drift."""

from __future__ import annotations

import io
import re
import socket

import pytest
from rich.console import Console

from monitor.demo import T0, WINDOW_S, DemoPlan, run_demo

pytestmark = pytest.mark.integration


def listening(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def test_demo_detects_injected_drift_and_leaves_nothing_running():
    plan = DemoPlan(windows=6, per_window=300, drift_from=3)
    output = io.StringIO()
    summaries = run_demo(plan, timeout_s=120, console=Console(file=output, width=160))
    evaluated = {round((s.window_start - T0) / WINDOW_S): s for s in summaries}
    # Every window but the last (which the watermark never passes) is evaluated.
    assert set(evaluated) >= set(range(plan.windows - 1))
    for index in range(plan.drift_from):
        assert not evaluated[index].dataset_drift, index
    for index in range(plan.drift_from, plan.windows - 1):
        assert evaluated[index].dataset_drift, index
    text = output.getvalue()
    assert "drift injected into income and utilization" in text
    # The demo's broker and HTTP API are gone once it returns.
    broker = re.search(r"Broker 127\.0\.0\.1:(\d+)", text)
    api = re.search(r"API http://127\.0\.0\.1:(\d+)", text)
    assert broker is not None
    assert api is not None
    assert not listening("127.0.0.1", int(broker.group(1)))
    assert not listening("127.0.0.1", int(api.group(1)))

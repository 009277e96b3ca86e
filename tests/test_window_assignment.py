"""The vectorised window assignment of a poll equals the record-by-record rule.

:func:`monitor.streaming.aggregate._assign_windows` decides, for a whole batch
at once, which windows each record falls in, which of them are still live
under the partition's running watermark, and which records are late. The
reference below is the record-by-record loop it replaced; groups, their
members and order, the counted and late tallies and the new largest event
time must be identical.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from monitor.streaming import aggregate
from monitor.streaming.aggregate import AddResult, _assign_windows
from monitor.windows import WindowSpec


def reference(
    specs: dict[str, WindowSpec], records: list[SimpleNamespace], high: float | None
) -> tuple[
    list[tuple[tuple[str, float, float], list[int]]], dict[str, int], dict[str, int], float | None
]:
    """The record-by-record rule: groups in first-met order, counted, late, new high."""
    groups: dict[tuple[str, float, float], list[int]] = defaultdict(list)
    counted: dict[str, int] = defaultdict(int)
    late: dict[str, int] = defaultdict(int)
    for index, record in enumerate(records):
        spec = specs[record.model]
        t = record.event_time
        if high is None or t > high:
            high = t
        watermark = high - spec.allowed_lateness_s
        live = [w for w in spec.windows_for(t) if w[1] > watermark]
        if not live:
            late[record.model] += 1
            continue
        counted[record.model] += 1
        for start, end in live:
            groups[(record.model, start, end)].append(index)
    return list(groups.items()), dict(counted), dict(late), high


SPECS = {
    "tumbling": WindowSpec(60.0, allowed_lateness_s=30.0),
    "hopping": WindowSpec(60.0, 20.0, allowed_lateness_s=5.0),
    "strict": WindowSpec(1.0),
    # Steps that are not exact in binary: window edges where division rounds.
    "tenths": WindowSpec(0.3, 0.1, allowed_lateness_s=0.2),
    "sevenths": WindowSpec(1 / 7, allowed_lateness_s=0.0),
}


def batch(rng: np.random.Generator, n: int, names: list[str], base: float) -> list[SimpleNamespace]:
    """Records of ``names`` with drifting, jittered, sometimes late or edge-exact event times."""
    out = []
    t = base
    for _ in range(n):
        t += float(rng.exponential(0.4))
        name = names[int(rng.integers(len(names)))]
        jitter = float(rng.normal(0, 3)) if rng.random() < 0.8 else -float(rng.exponential(90))
        event = t + jitter
        roll = rng.random()
        if roll < 0.1:  # exactly on a window edge of the model's step
            step = SPECS[name].step_s
            event = float(np.round(event / step) * step)
        elif roll < 0.15:
            event = float(np.nextafter(event, -np.inf))
        out.append(SimpleNamespace(model=name, event_time=event))
    return out


@pytest.mark.parametrize("run_records", [0, 16, 1 << 62], ids=["numpy", "mixed", "by-record"])
@pytest.mark.parametrize("seed", range(12))
def test_assignment_equals_record_by_record(
    seed: int, run_records: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches of fewer records per model than _RUN_RECORDS go record by record.
    monkeypatch.setattr(aggregate, "_RUN_RECORDS", run_records)
    rng = np.random.default_rng(seed)
    names = list(SPECS) if seed % 3 else [list(SPECS)[seed % len(SPECS)]]
    high: float | None = None if seed % 2 else 1_800_000_000.0
    base = 1_800_000_000.0 + float(rng.integers(0, 10_000)) / 7
    for poll in range(6):
        records = batch(rng, int(rng.integers(0, 400)), names, base + 60 * poll)
        outcome = AddResult()
        groups, new_high = _assign_windows(SPECS, records, high, outcome)  # type: ignore[arg-type]
        want_groups, want_counted, want_late, want_high = reference(SPECS, records, high)
        assert [(key, members.tolist()) for key, members in groups] == want_groups
        assert dict(outcome.counted) == want_counted
        assert dict(outcome.late) == want_late
        assert new_high == want_high
        high = new_high


def test_non_finite_event_time_raises_as_windows_for() -> None:
    records = [SimpleNamespace(model="strict", event_time=float("nan"))]
    with pytest.raises(ValueError, match="event_time must be a finite number"):
        _assign_windows(SPECS, records, None, AddResult())  # type: ignore[arg-type]


def test_empty_batch_keeps_high() -> None:
    assert _assign_windows(SPECS, [], 5.0, AddResult()) == ([], 5.0)

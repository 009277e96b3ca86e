"""Smoke test of the calibration study's driftline side (``benchmarks/calibration.py``).

One tiny seeded grid, no peers: the output has the documented structure, the
seeded data is reproducible, and with no shift driftline rarely flags.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmarks import calibration
from benchmarks.peers.calibrate_peers import TYPES, make_cell_pair, shifts_of

SIZE, REPS = 400, 6


@pytest.fixture(scope="module")
def cells() -> list[dict[str, object]]:
    found = calibration.driftline_cells(list(TYPES), SIZE, REPS, seed=0, min_effect_size=0.05)
    for cell in found:
        cell["n"], cell["reps"] = SIZE, REPS
    return found


def test_make_cell_pair_is_seeded() -> None:
    for kind in TYPES:
        first = make_cell_pair(kind, 200, 1, 3, seed=7)
        again = make_cell_pair(kind, 200, 1, 3, seed=7)
        other = make_cell_pair(kind, 200, 1, 4, seed=7)
        for a, b in zip(first, again, strict=True):
            pd.testing.assert_frame_equal(a, b)
        assert list(first[0].columns) == [kind]
        assert len(first[0]) == len(first[1]) == 200
        assert not first[1].equals(other[1])


def test_cells_structure(cells: list[dict[str, object]]) -> None:
    assert len(cells) == sum(len(shifts_of(kind)) for kind in TYPES)
    for cell in cells:
        flags = cell["flags"]
        assert isinstance(flags, list)
        assert len(flags) == REPS
        assert len(cell["effect_sizes"]) == REPS  # type: ignore[arg-type]
        assert len(cell["min_effect_flags"]) == REPS  # type: ignore[arg-type]
        assert cell["share"] == sum(flags) / REPS
        assert cell["method"] in {"ks", "chi_square"}
        # the minimum-effect rule only ever removes flags
        assert cell["min_effect_share"] <= cell["share"]  # type: ignore[operator]
    methods = {c["type"]: c["method"] for c in cells}
    assert methods["normal"] == "ks"
    assert methods["levels5"] == methods["categorical"] == "chi_square"
    json.dumps(cells)  # everything is JSON-serialisable


def test_no_shift_is_rarely_flagged(cells: list[dict[str, object]]) -> None:
    null = [c for c in cells if c["shift_index"] == 0]
    assert len(null) == len(TYPES)
    for cell in null:
        assert cell["share"] <= 0.5, cell["type"]
    overall = sum(sum(c["flags"]) for c in null) / (REPS * len(null))  # type: ignore[arg-type]
    assert overall <= 0.2


def test_tables_and_thresholds_render(cells: list[dict[str, object]]) -> None:
    text = calibration.tables(cells, [])
    for kind in TYPES:
        assert f"**{kind}**" in text
    assert "dl " in text
    assert "dl+e " in text
    found = calibration.thresholds(cells)
    assert set(found) == set(TYPES)
    assert all(t["power_note"] == "no size >= 5,000" for t in found.values())
    assert "| normal | ks |" in calibration.thresholds_text(found)


def test_reps_for_caps_large_sizes() -> None:
    assert calibration.reps_for(5_000, 20, 5) == 20
    assert calibration.reps_for(1_000_000, 20, 5) == 5
    assert calibration.reps_for(10_000_000, 3, 5) == 3

"""The calibration study's driftline side (``benchmarks/calibration.py``) and its targets.

A small seeded grid run in every ``make test``, so that a regression in the
drift decision fails the suite: at 500 and 5,000 rows per side, for every
feature type of the study, driftline at its defaults must

* flag no-shift data in at most alpha (5%) of repetitions, allowing for the
  sampling error of 120 repetitions (at most 12 flags: P(X >= 13) < 1% for a
  test at exactly 5%);
* flag shifts whose true effect is below the materiality threshold just as
  rarely;
* flag 0.2 sd / TV 0.1 shifts in at least 95% of 40 repetitions at 5,000 rows.

The true effects are checked against scipy and closed forms, and the study's
structure and tables against the documented shape.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from scipy import stats

from benchmarks import calibration
from benchmarks.peers.calibrate_peers import TYPES, make_cell_pair, shifts_of
from detectors.drift import DEFAULT_MIN_EFFECT_SIZE

QUIET_REPS = 120
POWER_REPS = 40
#: Most flags allowed in QUIET_REPS repetitions of a 5% test: P(Binomial(120, 0.05) > 12) < 1%.
QUIET_MAX_FLAGS = 12


def _cells(size: int, reps: int) -> list[dict[str, object]]:
    found = calibration.driftline_cells(list(TYPES), size, reps, seed=0)
    for cell in found:
        cell["n"], cell["reps"] = size, reps
    return found


@pytest.fixture(scope="module")
def small() -> list[dict[str, object]]:
    return _cells(500, QUIET_REPS)


@pytest.fixture(scope="module")
def medium() -> list[dict[str, object]]:
    return _cells(5_000, QUIET_REPS)


def test_quiet_cell_bound_is_a_one_percent_tail() -> None:
    assert stats.binom.sf(QUIET_MAX_FLAGS, QUIET_REPS, 0.05) < 0.01


@pytest.mark.parametrize("fixture", ["small", "medium"])
def test_no_shift_and_immaterial_shifts_stay_quiet(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    cells = request.getfixturevalue(fixture)
    checked = 0
    for cell in cells:
        if cell["role"] in ("null", "below"):
            checked += 1
            flags = sum(cell["flags"])  # type: ignore[arg-type]
            assert flags <= QUIET_MAX_FLAGS, (cell["type"], cell["shift"], cell["n"], flags)
    # every type has its no-shift cell and at least one shift below the threshold
    assert checked >= 2 * len(TYPES)


def test_material_shifts_are_flagged_from_5000_rows() -> None:
    cells = _cells(5_000, POWER_REPS)
    material = [c for c in cells if c["role"] == "material"]
    assert len(material) == 2 * len(TYPES)
    for cell in material:
        assert cell["share"] >= 0.95, (cell["type"], cell["shift"], cell["share"])


def test_the_test_alone_would_cry_wolf_where_materiality_does_not() -> None:
    """At 50,000 rows a 0.05 sd shift is detectable most of the time, yet not material."""
    (cell,) = [
        c
        for c in calibration.driftline_cells(["normal"], 50_000, 20, seed=0)
        if c["shift_index"] == 2
    ]
    assert cell["role"] == "below"
    assert cell["detectable_share"] >= 0.8
    assert cell["share"] == 0.0


@pytest.mark.parametrize(
    ("kind", "shift", "expected"),
    [
        ("normal", 0.2, 2 * stats.norm.cdf(0.1) - 1),
        ("zero_inflated", 0.1, 0.4 * (1 - math.exp(-0.2))),
        ("categorical", 0.05, 0.05),
        ("levels5", 0.2, stats.norm.cdf(0.5) - stats.norm.cdf(0.3)),
    ],
)
def test_true_effect_closed_forms(kind: str, shift: float, expected: float) -> None:
    assert calibration.true_effect(kind, shift) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", ["skewed", "counts", "rounded"])
def test_true_effect_matches_a_large_sample(kind: str) -> None:
    """The numerically computed effects agree with scipy's KS on 400,000 rows per side."""
    reference, current = make_cell_pair(kind, 400_000, 4, 0, seed=1)
    sample = stats.ks_2samp(reference[kind], current[kind]).statistic
    assert calibration.true_effect(kind, shifts_of(kind)[4]) == pytest.approx(sample, abs=0.005)


def test_roles() -> None:
    assert calibration.role("normal", 0) == "null"
    assert calibration.role("normal", 2) == "below"  # 0.05 sd: KS 0.020
    assert calibration.role("normal", 3) == "between"  # 0.1 sd: KS 0.040
    assert calibration.role("normal", 4) == "material"
    assert calibration.true_effect("normal", 0.1) > DEFAULT_MIN_EFFECT_SIZE


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


def test_cells_structure_tables_and_scorecard(small: list[dict[str, object]]) -> None:
    assert len(small) == sum(len(shifts_of(kind)) for kind in TYPES)
    for cell in small:
        flags = cell["flags"]
        assert isinstance(flags, list)
        assert len(flags) == QUIET_REPS
        assert cell["share"] == sum(flags) / QUIET_REPS
        # the decision only ever removes flags from the test's
        assert cell["share"] <= cell["detectable_share"]  # type: ignore[operator]
        assert cell["method"] in {"ks", "chi_square"}
    methods = {c["type"]: c["method"] for c in small}
    assert methods["normal"] == "ks"
    assert methods["levels5"] == methods["categorical"] == "chi_square"
    json.dumps(small)  # everything is JSON-serialisable
    text = calibration.tables(small, [])
    for kind in TYPES:
        assert f"**{kind}**" in text
    card = calibration.scorecard(small, ["driftline"])
    assert card[0]["library"] == "driftline"
    assert card[0]["material"] is None  # no size >= 5,000 in this grid
    assert "| driftline |" in calibration.scorecard_text(card)
    assert calibration.power_limits(small) == dict.fromkeys(TYPES)


def test_reps_for_caps_large_sizes() -> None:
    assert calibration.reps_for(5_000, 20, 5) == 20
    assert calibration.reps_for(1_000_000, 20, 5) == 5
    assert calibration.reps_for(10_000_000, 200, 20) == 5
    assert calibration.reps_for(10_000_000, 3, 2) == 1

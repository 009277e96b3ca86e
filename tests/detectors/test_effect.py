"""Effect sizes and their lower confidence bounds (``detectors.effect``).

Checked against scipy and closed forms: the KS effect of a normal location
shift is ``2 Phi(delta / 2) - 1``; the ordinal effect of an integer column is
scipy's two-sample KS statistic on the raw integers; the lower bound covers
the true effect in at least 95% of seeded repetitions.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.drift import DriftSettings, compare_frames
from detectors.effect import (
    effect_lower_bound,
    effect_size,
    noise_quantile,
    numeric_order,
    total_variation,
)
from detectors.pairs import UNSEEN, CategoricalPair, NumericPair


def _categorical(
    labels: tuple[str, ...], reference: list[int], current: list[int]
) -> CategoricalPair:
    return CategoricalPair(
        categories=(*labels, UNSEEN),
        reference=np.array(reference, dtype=np.int64),
        current=np.array(current, dtype=np.int64),
    )


@pytest.mark.parametrize("delta", [0.05, 0.2, 0.5])
def test_numeric_effect_is_the_ks_distance_of_the_shift(delta: float) -> None:
    rng = np.random.default_rng(1)
    reference, current = rng.normal(0, 1, 200_000), rng.normal(delta, 1, 200_000)
    pair = NumericPair.from_values(reference, current)
    assert effect_size(pair) == pytest.approx(stats.ks_2samp(reference, current).statistic)
    assert effect_size(pair) == pytest.approx(2 * stats.norm.cdf(delta / 2) - 1, abs=0.006)


def test_integer_labels_are_ordinal_and_match_scipy_ks() -> None:
    rng = np.random.default_rng(2)
    reference = rng.poisson(3.0, 5000)
    current = rng.poisson(3.4, 4000)
    frame_ref, frame_cur = pd.DataFrame({"n": reference}), pd.DataFrame({"n": current})
    (feature,) = compare_frames(frame_ref, frame_cur, DriftSettings()).features
    assert feature.kind.value == "categorical"  # few integer levels profile as categorical
    assert feature.effect_size == pytest.approx(stats.ks_2samp(reference, current).statistic)
    # the ordinal effect never exceeds the total variation distance
    levels = np.union1d(reference, current)
    p = np.array([(reference == v).mean() for v in levels])
    q = np.array([(current == v).mean() for v in levels])
    assert feature.effect_size <= 0.5 * np.abs(p - q).sum() + 1e-12


def test_order_is_numeric_not_lexical() -> None:
    pair = _categorical(("10", "2", "1"), [0, 50, 50, 0], [50, 50, 0, 0])
    order = numeric_order(pair)
    assert order is not None
    assert [pair.categories[i] for i in order] == ["1", "2", "10"]
    # moving half the mass from 1 to 10 moves the CDF at 1 and at 2 by 0.5
    assert effect_size(pair) == pytest.approx(0.5)


def test_names_and_unseen_values_fall_back_to_total_variation() -> None:
    names = _categorical(("a", "b", "c"), [50, 30, 20, 0], [30, 30, 40, 0])
    assert numeric_order(names) is None
    assert effect_size(names) == pytest.approx(total_variation(names)) == pytest.approx(0.2)
    unseen = _categorical(("1", "2"), [60, 40, 0], [50, 40, 10])
    assert numeric_order(unseen) is None
    assert effect_size(unseen) == pytest.approx(0.1)


@pytest.mark.parametrize(("cells", "expected"), [(2, 1.96 / 2), (6, 0.5 * math.sqrt(11.0705))])
def test_noise_quantile_of_total_variation_is_half_the_chi_square_root(
    cells: int, expected: float
) -> None:
    labels = tuple("abcdef"[:cells])
    pair = _categorical(labels, [10] * cells + [0], [10] * cells + [0])
    assert noise_quantile(pair, 0.95) == pytest.approx(expected, rel=1e-3)
    numeric = NumericPair.from_values(np.arange(5.0), np.arange(5.0))
    assert noise_quantile(numeric, 0.95) == pytest.approx(1.3581, rel=1e-4)  # Kolmogorov


def test_chance_alone_rarely_passes_the_bound() -> None:
    """Six categories, 500 rows per side, no change: the plain TV is ~0.05, the bound ~0."""
    rng = np.random.default_rng(3)
    p = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
    plain, bounds = [], []
    for _ in range(300):
        pair = _categorical(
            tuple("abcdef"), [*rng.multinomial(500, p), 0], [*rng.multinomial(500, p), 0]
        )
        plain.append(total_variation(pair))
        bounds.append(effect_lower_bound(pair, effect_size(pair), 0.95))
    assert 0.04 < np.mean(plain) < 0.07
    assert np.mean(np.array(bounds) > 0) <= 0.05


@pytest.mark.parametrize(("kind", "rows"), [("numeric", 500), ("numeric", 5000), ("nominal", 2000)])
def test_lower_bound_covers_the_true_effect(kind: str, rows: int) -> None:
    """The 0.95 bound lies at or below the true effect in >= 95% of 200 seeded repetitions."""
    rng = np.random.default_rng(4)
    covered = 0
    reps = 200
    p = np.array([0.4, 0.3, 0.2, 0.1])
    q = np.array([0.34, 0.3, 0.2, 0.16])
    for _ in range(reps):
        if kind == "numeric":
            pair: NumericPair | CategoricalPair = NumericPair.from_values(
                rng.normal(0, 1, rows), rng.normal(0.1, 1, rows)
            )
            truth = 2 * stats.norm.cdf(0.05) - 1
        else:
            pair = _categorical(
                tuple("abcd"), [*rng.multinomial(rows, p), 0], [*rng.multinomial(rows, q), 0]
            )
            truth = 0.06
        covered += effect_lower_bound(pair, effect_size(pair), 0.95) <= truth
    assert covered / reps >= 0.95


def test_lower_bound_closed_form_and_edges() -> None:
    pair = _categorical(("1", "2"), [70, 30, 0], [40, 60, 0])
    effect = effect_size(pair)
    assert effect == pytest.approx(0.3)
    q = stats.kstwobign.isf(0.1)  # ordinal labels: Kolmogorov's quantile
    assert effect_lower_bound(pair, effect, 0.9) == pytest.approx(
        0.3 - q * math.sqrt(1 / 100 + 1 / 100)
    )
    assert effect_lower_bound(pair, effect, None) == pytest.approx(0.3)
    assert effect_lower_bound(pair, 0.01, 0.95) == 0.0
    assert math.isnan(effect_lower_bound(pair, math.nan, 0.95))
    empty = _categorical(("1", "2"), [70, 30, 0], [0, 0, 0])
    assert math.isnan(effect_lower_bound(empty, 0.3, 0.95))

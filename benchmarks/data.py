"""Seeded benchmark data shared by driftline and the peer-library runners.

The same function runs in driftline's environment and in the peers' own
virtualenv, so it uses numpy and pandas only and must stay deterministic for a
given ``(rows, seed)`` across pandas 2 and 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = [f"cat_{i}" for i in range(5)]
#: Features whose distribution moves in the current data; every other feature is unchanged.
DRIFTED = ["num_00", "num_01", "num_02", "num_03", "cat_0"]


def _numeric(rng: np.random.Generator, i: int, rows: int, shift: float) -> np.ndarray:
    """Column ``i``: a mix of normal, lognormal, exponential and uniform shapes."""
    kind = i % 4
    if kind == 0:
        return rng.normal(loc=shift, scale=1.0, size=rows)
    if kind == 1:
        return rng.lognormal(mean=0.0 + shift, sigma=0.5, size=rows)
    if kind == 2:
        return rng.exponential(scale=1.0 + shift, size=rows)
    return rng.uniform(low=0.0 + shift, high=1.0 + shift, size=rows)


def _categorical(rng: np.random.Generator, rows: int, drift: bool) -> np.ndarray:
    levels = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    p = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
    if drift:
        p = np.array([0.18, 0.25, 0.20, 0.12, 0.15, 0.10])
    return rng.choice(levels, size=rows, p=p)


def make_frame(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    """Return ``rows`` rows of 20 numeric and 5 categorical columns.

    With ``drift=True`` the columns in :data:`DRIFTED` move (numeric ones by a
    0.25-scale shift, ``cat_0`` by a change in level frequencies); the others
    keep the reference distribution.
    """
    rng = np.random.default_rng(seed)
    data: dict[str, np.ndarray] = {}
    for i, name in enumerate(NUMERIC):
        shift = 0.25 if (drift and name in DRIFTED) else 0.0
        data[name] = _numeric(rng, i, rows, shift)
    for name in CATEGORICAL:
        data[name] = _categorical(rng, rows, drift and name in DRIFTED)
    frame = pd.DataFrame(data)
    for name in CATEGORICAL:
        frame[name] = frame[name].astype(object)
    return frame


def make_pair(rows: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(reference, current)`` frames of ``rows`` rows each; current drifts on DRIFTED."""
    return make_frame(rows, seed, drift=False), make_frame(rows, seed + 1, drift=True)

"""Calibration-study data, and the peer side of the study (run inside ``.venv-peers``).

The study (``benchmarks/calibration.py``) asks, per feature type, sample size and
shift size, how often each library flags a feature at its defaults. This module
holds the one thing both sides share: :func:`make_cell_pair`, the seeded
generator of a one-column ``(reference, current)`` pair. It needs numpy and pandas
only, so driftline's virtualenv (pandas 3) and the peers' (pandas < 3) build the
same values from the same seeds; the datasets are never written to disk.

Run as a script it is one peer's whole batch for one sample size::

    .venv-peers/bin/python benchmarks/peers/calibrate_peers.py --library evidently \\
        --size 5000 --reps 10 [--types normal skewed ...] [--seed 0]

It regenerates every ``(type, shift, rep)`` pair of that size, runs the peer at
its defaults through the ``detect`` of its benchmark runner (``run_evidently``,
``run_nannyml`` with NannyML's default chunking, ``run_alibi``), and prints one
JSON line: the per-repetition verdicts of every cell. Everything the libraries
print goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import pandas as pd

#: Shift sizes of the numeric types, in standard deviations of the reference feature.
NUMERIC_SHIFTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)
#: Shift sizes of the categorical type, as total variation distance.
CATEGORICAL_SHIFTS = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2)

#: Feature types of the study and what each one is (the column is named after its type).
TYPES: dict[str, str] = {
    "normal": "N(0, 1); shift = location shift in sd",
    "skewed": "lognormal(0, 1) (sd 2.16); location shift in sd",
    "counts": "Poisson(40) integer counts (35+ levels, numeric); mean 40 + shift*sqrt(40)",
    "rounded": "N(0, 5) rounded to integers (30+ levels, numeric); location shift in sd",
    "zero_inflated": (
        "60% exact zeros, else exponential(1) (sd 0.8); positive part moved 2*shift so the"
        " mean moves shift*sd"
    ),
    "levels5": "latent N(shift, 1) cut into integers 1..5 (a 5-level numeric column)",
    "categorical": "6 string levels; shift = total variation moved from level a to level f",
}

_RUNNERS = {"evidently": "run_evidently", "nannyml": "run_nannyml", "alibi": "run_alibi"}
_LEVELS = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
_LEVEL_P = np.array([0.30, 0.25, 0.20, 0.12, 0.08, 0.05])
_CUTS = np.array([-1.5, -0.5, 0.5, 1.5])  # latent N(0, 1) -> levels 1..5
_SKEW_SD = float(np.sqrt((np.e - 1.0) * np.e))  # sd of lognormal(0, 1)
_ZERO_SHARE = 0.6


def shifts_of(kind: str) -> tuple[float, ...]:
    """Return the shift grid of feature type ``kind``."""
    return CATEGORICAL_SHIFTS if kind == "categorical" else NUMERIC_SHIFTS


def _column(kind: str, rng: np.random.Generator, rows: int, shift: float) -> np.ndarray:
    """Draw ``rows`` values of feature type ``kind`` moved by ``shift``."""
    if kind == "normal":
        return rng.normal(shift, 1.0, rows)
    if kind == "skewed":
        return rng.lognormal(0.0, 1.0, rows) + shift * _SKEW_SD
    if kind == "counts":
        lam = 40.0
        return rng.poisson(lam + shift * np.sqrt(lam), rows).astype(np.int64)
    if kind == "rounded":
        return np.round(rng.normal(5.0 * shift, 5.0, rows)).astype(np.int64)
    if kind == "zero_inflated":
        # The feature's sd is 0.8 (60% zeros, 40% exponential(1)); moving the positive part
        # by 2*shift moves the mean by 0.4 * 2 * shift = shift * 0.8, i.e. `shift` sd.
        values = rng.exponential(1.0, rows) + 2.0 * shift
        return np.where(rng.random(rows) < _ZERO_SHARE, 0.0, values)
    if kind == "levels5":
        latent = rng.normal(shift, 1.0, rows)
        return (np.searchsorted(_CUTS, latent) + 1).astype(np.int64)
    if kind == "categorical":
        p = _LEVEL_P.copy()
        p[0] -= shift
        p[-1] += shift  # moving mass `shift` from one level to another: TV = shift
        return rng.choice(_LEVELS, size=rows, p=p)
    raise ValueError(f"unknown feature type {kind!r}")


def cell_seed(
    seed: int, kind: str, rows: int, shift_index: int, rep: int
) -> np.random.SeedSequence:
    """Return the seed sequence of one ``(type, rows, shift, rep)`` dataset."""
    return np.random.SeedSequence([seed, list(TYPES).index(kind), rows, shift_index, rep])


def make_cell_pair(
    kind: str, rows: int, shift_index: int, rep: int, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the seeded one-column ``(reference, current)`` pair of one cell repetition.

    Reference and current come from independent streams of the cell's seed; only
    the current side is shifted, by ``shifts_of(kind)[shift_index]``.
    """
    ref_seq, cur_seq = cell_seed(seed, kind, rows, shift_index, rep).spawn(2)
    shift = shifts_of(kind)[shift_index]
    reference = _column(kind, np.random.default_rng(ref_seq), rows, 0.0)
    current = _column(kind, np.random.default_rng(cur_seq), rows, shift)
    return pd.DataFrame({kind: reference}), pd.DataFrame({kind: current})


def _detector(library: str) -> tuple[str, Callable[[pd.DataFrame, pd.DataFrame], Any]]:
    """Return ``(version, detect)`` of a peer, as its benchmark runner configures it."""
    if library == "nannyml":
        sys.argv += ["--chunks", "default"]  # read at import: NannyML's own 10-chunk chunker
    runner = importlib.import_module(f"benchmarks.peers.{_RUNNERS[library]}")
    return runner.warm_up(), runner.detect


def main() -> None:
    parser = argparse.ArgumentParser(description="One peer's calibration batch for one size.")
    parser.add_argument("--library", required=True, choices=["evidently", "nannyml", "alibi"])
    parser.add_argument("--size", type=int, required=True, help="rows per side")
    parser.add_argument("--reps", type=int, required=True, help="repetitions per cell")
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
    cells = []
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        version, detect = _detector(args.library)
        for kind in args.types:
            for shift_index in range(len(shifts_of(kind))):
                flags = []
                for rep in range(args.reps):
                    reference, current = make_cell_pair(
                        kind, args.size, shift_index, rep, args.seed
                    )
                    flags.append(kind in detect(reference, current).flagged)
                cells.append({"type": kind, "shift_index": shift_index, "flags": flags})
    result = {
        "library": args.library,
        "version": version,
        "size": args.size,
        "reps": args.reps,
        "seconds": round(time.perf_counter() - start, 2),
        "cells": cells,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

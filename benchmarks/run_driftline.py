"""driftline runner for the side-by-side benchmark, on the same harness as the peer runners.

Usage (from the repository root, in driftline's virtualenv)::

    .venv/bin/python -m benchmarks.run_driftline --rows 100000 --seed 0 [--exact]

The timed part goes from the two data frames to per-feature decisions: the
reference profile, the sketch of the current rows, every test and the
corrections, i.e. ``driftline check`` without the file reading. ``--exact``
runs the raw-row path instead (numeric statistics on the raw values).
"""

from __future__ import annotations

import sys

import pandas as pd

from benchmarks.peers._common import Detection, run

EXACT = "--exact" in sys.argv
if EXACT:
    sys.argv.remove("--exact")


def warm_up() -> str:
    """Import driftline's statistics library (untimed) and return its version."""
    import detectors.drift  # noqa: F401

    return "0.1.0"


def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Detection:
    """Compare with the default settings (KS, chi-square, Benjamini-Hochberg)."""
    from detectors.drift import compare_frames

    report = compare_frames(reference, current, exact=EXACT)
    return Detection(flagged=[f.name for f in report.drifted], dataset_drift=report.dataset_drift)


if __name__ == "__main__":
    run("driftline-exact" if EXACT else "driftline", warm_up, detect)

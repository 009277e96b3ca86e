"""Evidently peer runner: ``DataDriftPreset`` with default settings, reference vs current.

Usage (from the repository root, with the peers' virtualenv)::

    .venv-peers/bin/python benchmarks/peers/run_evidently.py --rows 100000 --seed 0

Per-feature verdicts come from the snapshot's ``dict()["tests"]``. In Evidently 0.7 a
``ValueDrift`` metric's value is only the drift *score*; whether that score means
drift depends on the method (p-values drift below the threshold, distances at or
above it), and the library's own boolean is published only as the metric's test
status. The report is therefore built with ``include_tests=True``, which attaches
that status to each metric without changing what is computed: a ``ValueDrift`` test
with status ``FAIL`` is a drifted column, and the ``DriftedColumnsCount`` test
(share of drifted columns < ``drift_share``) failing is Evidently's dataset drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd

from benchmarks.peers._common import Detection, run

_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COLUMNS_COUNT = "evidently:metric_v2:DriftedColumnsCount"


def warm_up() -> str:
    """Import Evidently's report machinery (untimed) and return the version."""
    import evidently
    from evidently import Report  # noqa: F401
    from evidently.presets import DataDriftPreset  # noqa: F401

    return str(evidently.__version__)


def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Detection:
    """Run ``Report([DataDriftPreset()])`` and read the verdicts from its tests."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=current, reference_data=reference
    )
    flagged: list[str] = []
    dataset_drift: bool | None = None
    for test in snapshot.dict()["tests"]:
        params = test["metric_config"]["params"]
        failed = test["status"] == "FAIL"
        if params["type"] == _VALUE_DRIFT and failed:
            flagged.append(params["column"])
        elif params["type"] == _DRIFTED_COLUMNS_COUNT:
            dataset_drift = failed
    return Detection(flagged=flagged, dataset_drift=dataset_drift)


if __name__ == "__main__":
    run("evidently", warm_up, detect)

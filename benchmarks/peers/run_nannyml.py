"""NannyML peer runner: ``UnivariateDriftCalculator`` with KS (numeric) and chi2 (categorical).

Usage (from the repository root, with the peers' virtualenv)::

    .venv-peers/bin/python benchmarks/peers/run_nannyml.py --rows 100000 --seed 0

The calculator is fit on the reference frame and run on the current frame.
With ``--chunks default`` NannyML's default chunker splits each frame into 10
chunks (how its documentation runs it; the alert thresholds come from the
spread of the statistic over the reference chunks). With ``--chunks 1`` each
frame is one chunk: the same computation as one monitoring window, but the
KS threshold degenerates to 0 (mean + 3 std of a single reference chunk
compared with itself), so every numeric column alerts. A feature is flagged when
the ``alert`` column of its analysis-period row is true for any of its methods
(``Result.filter(period="analysis")`` then ``Result.alerts(key)`` per
``(column, method)`` key). NannyML's univariate calculator has no dataset-level
verdict, so ``dataset_drift`` is null.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd

from benchmarks.peers._common import Detection, run

CHUNKS = "1"
if "--chunks" in sys.argv:  # runner-specific option, removed before the shared parser sees it
    at = sys.argv.index("--chunks")
    CHUNKS = sys.argv[at + 1]
    del sys.argv[at : at + 2]


def warm_up() -> str:
    """Import NannyML (untimed) and return the version."""
    import nannyml

    return str(nannyml.__version__)


def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Detection:
    """Fit on ``reference``, calculate on ``current``; a feature is flagged if any chunk alerts."""
    import nannyml

    calculator = nannyml.UnivariateDriftCalculator(
        column_names=list(reference.columns),
        continuous_methods=["kolmogorov_smirnov"],
        categorical_methods=["chi2"],
        **({} if CHUNKS == "default" else {"chunk_number": int(CHUNKS)}),
    )
    calculator.fit(reference)
    analysis = calculator.calculate(current).filter(period="analysis")
    flagged: set[str] = set()
    for key in analysis.keys():  # noqa: SIM118 - a NannyML Result has keys() but is no mapping
        column, _method = key.properties
        if analysis.alerts(key).any():
            flagged.add(column)
    return Detection(flagged=list(flagged), dataset_drift=None)


if __name__ == "__main__":
    run("nannyml" if CHUNKS == "default" else f"nannyml-{CHUNKS}chunk", warm_up, detect)

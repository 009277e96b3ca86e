"""Whole-process peer run for the start-up benchmark: two parquet files in, drift verdicts out.

Usage (from the repository root, with the peers' virtualenv)::

    .venv-peers/bin/python benchmarks/peers/check_files.py evidently REF.parquet CUR.parquet
    .venv-peers/bin/python benchmarks/peers/check_files.py nannyml REF.parquet CUR.parquet

The peers' equivalent of ``driftline check --reference REF --current CUR``:
the process starts, imports the library, reads both files with pandas, runs
the same computation as the in-process runners (``run_evidently.detect``:
``DataDriftPreset``; ``run_nannyml.detect`` with NannyML's default chunking:
univariate drift, KS and chi-square) and prints one JSON line with the
flagged features. ``benchmarks/startup.py`` times the whole process.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LIBRARIES = ("evidently", "nannyml")


def main(argv: list[str]) -> int:
    """Read the two files, run the library's drift detection and print one JSON line."""
    if len(argv) != 3 or argv[0] not in LIBRARIES:
        print(f"usage: check_files.py {{{','.join(LIBRARIES)}}} REF CUR", file=sys.stderr)
        return 2
    library, reference_path, current_path = argv
    import pandas as pd

    if library == "evidently":
        from benchmarks.peers import run_evidently as runner
    else:
        from benchmarks.peers import run_nannyml as runner

        runner.CHUNKS = "default"  # NannyML's documented use: 10 chunks per frame
    # The libraries print progress and warnings: keep stdout for the one JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        reference = pd.read_parquet(reference_path)
        current = pd.read_parquet(current_path)
        detection = runner.detect(reference, current)
    result = {
        "library": library,
        "flagged": sorted(detection.flagged),
        "dataset_drift": detection.dataset_drift,
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

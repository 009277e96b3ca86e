"""NannyML peer runner for performance estimation: CBPE on NannyML's synthetic car-loan data.

Usage (from the repository root, with the peers' virtualenv)::

    .venv-peers/bin/python benchmarks/peers/run_nannyml_cbpe.py [--chunk-size 5000]

Fits ``nannyml.CBPE(problem_type="classification_binary", metrics=["roc_auc",
"accuracy", "f1"], y_pred_proba="y_pred_proba", y_pred="y_pred",
y_true="repaid", chunk_size=...)`` on the reference set of
``nannyml.load_synthetic_car_loan_dataset()`` and estimates on the analysis set
with its targets joined in (by ``id``), so that NannyML also reports the
realized value of each metric per chunk. Chunks are consecutive rows in file
order (no timestamp column is given), the chunks ``benchmarks/cbpe.py`` builds.

Prints exactly one JSON line to stdout::

    {"library": "nannyml", "version": "0.13.1", "chunk_size": 5000,
     "needs_calibration": true, "fit_seconds": ..., "estimate_seconds": ...,
     "peak_rss_mb": ..., "data_mb": ...,
     "chunks": [{"index": 0, "start": 0, "end": 4999,
                 "estimated": {"roc_auc": ..., "accuracy": ..., "f1": ...},
                 "realized": {...}}, ...]}

``start``/``end`` are NannyML's inclusive row positions in the analysis set.
Times are wall-clock (:func:`time.perf_counter`) of ``fit`` (which also
estimates the reference chunks, part of NannyML's fit) and of ``estimate``;
loading the data and importing NannyML are not timed. ``peak_rss_mb`` is the
process's peak RSS during fit and estimate (the kernel's peak mark is reset once
the data is loaded), ``data_mb`` its RSS at that point. Everything NannyML
prints, logs or warns goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.peers._common import current_rss_mb, peak_rss_mb, reset_peak_rss

# Keep NannyML from phoning home inside the timed part (read when it would send).
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

METRICS = ("roc_auc", "accuracy", "f1")


def main() -> None:
    """Run CBPE on the car-loan data and print the per-chunk result as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=5000, help="rows per chunk")
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    warnings.simplefilter("ignore")  # NannyML warns per chunk about plotting and sampling
    with contextlib.redirect_stdout(sys.stderr):
        import nannyml

        reference, analysis, targets = nannyml.load_synthetic_car_loan_dataset()
        analysis = analysis.merge(targets, on="id", how="left", validate="one_to_one")
        estimator = nannyml.CBPE(
            problem_type="classification_binary",
            y_pred_proba="y_pred_proba",
            y_pred="y_pred",
            y_true="repaid",
            metrics=list(METRICS),
            chunk_size=args.chunk_size,
        )
        data_mb = current_rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        estimator.fit(reference)
        fitted = time.perf_counter()
        result = estimator.estimate(analysis)
        done = time.perf_counter()
        peak_mb = peak_rss_mb()
        frame = result.filter(period="analysis").to_df()
    chunks = [
        {
            "index": int(row[("chunk", "chunk_index")]),
            "start": int(row[("chunk", "start_index")]),
            "end": int(row[("chunk", "end_index")]),
            "estimated": {m: float(row[(m, "value")]) for m in METRICS},
            "realized": {m: float(row[(m, "realized")]) for m in METRICS},
        }
        for _, row in frame.iterrows()
    ]
    output = {
        "library": "nannyml",
        "version": str(nannyml.__version__),
        "chunk_size": args.chunk_size,
        "needs_calibration": bool(estimator.needs_calibration),
        "fit_seconds": round(fitted - start, 4),
        "estimate_seconds": round(done - fitted, 4),
        "peak_rss_mb": round(peak_mb, 1),
        "data_mb": round(data_mb, 1),
        "chunks": chunks,
    }
    print(json.dumps(output), flush=True)


if __name__ == "__main__":
    main()

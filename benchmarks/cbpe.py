"""Performance estimation without labels: driftline's CBPE against NannyML's, per chunk.

Usage (from the repository root; ``bash benchmarks/setup_peers.sh`` first)::

    .venv/bin/python -m benchmarks.cbpe [--chunk-size 5000] [--no-peer] [--json]

Data: NannyML's synthetic car-loan data set, the three CSV files that ship
inside the ``nannyml`` package (``synthetic_car_loan_reference.csv``,
``synthetic_car_loan_analysis.csv``, ``synthetic_car_loan_analysis_target.csv``),
read with pandas from the peers' virtualenv (``$PEERS_VENV``, default
``.venv-peers``): nannyml itself cannot be installed in driftline's
virtualenv (it needs pandas < 3). 50,000 labelled reference rows and 50,000
analysis rows whose labels are in the target file.

driftline: :meth:`detectors.performance.CBPE.fit` on the reference, then per
chunk of ``--chunk-size`` consecutive analysis rows a sketch and its estimate.
The decision threshold is read off the data: the data's ``y_pred`` is
``y_pred_proba >= 0.65`` on every row of both sets (checked). The merged
sketch of all chunks is checked against the sketch of the whole analysis set.

NannyML: ``benchmarks/peers/run_nannyml_cbpe.py`` in a subprocess of the
peers' virtualenv, on the same chunks.

Realized values per chunk: scikit-learn's ``roc_auc_score`` (on the raw
scores), ``accuracy_score`` and ``f1_score`` (on ``y_pred``) with the labels.

Prints per metric the mean absolute error (MAE) of each library's estimate
against the realized value, the mean and largest absolute difference between
the two estimates, wall times (fit; estimate of all chunks; data loading
and imports excluded) and each process's peak RSS during fit and estimate (the
kernel's peak mark is reset once the data is loaded), and writes
``benchmarks/results/cbpe.json``. With ``--json`` the tables go to stderr and
the same results are printed to stdout as one JSON line, for
``benchmarks/compare.py``, which runs this module in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from benchmarks.peers._common import current_rss_mb, peak_rss_mb, reset_peak_rss
from detectors.performance import CBPE

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = Path(os.environ.get("PEERS_VENV", ROOT / ".venv-peers"))
PEER_RUNNER = ["benchmarks/peers/run_nannyml_cbpe.py"]
METRICS = ("roc_auc", "accuracy", "f1")
#: NannyML 0.13.1's MAE (estimated vs realized) on 5,000-row chunks, as quoted in the issue.
ANCHORS = {"roc_auc": 0.0021, "accuracy": 0.0031, "f1": 0.0026}
FILES = (
    "synthetic_car_loan_reference.csv",
    "synthetic_car_loan_analysis.csv",
    "synthetic_car_loan_analysis_target.csv",
)


def car_loan_dir(venv: Path = PEERS_VENV) -> Path | None:
    """Return the directory of NannyML's bundled data sets in ``venv``, or None if absent."""
    for candidate in sorted(venv.glob("lib/python3*/site-packages/nannyml/datasets/data")):
        if all((candidate / name).is_file() for name in FILES):
            return candidate
    return None


def load_car_loan(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(reference, analysis)``; the analysis rows get their ``repaid`` labels by ``id``."""
    reference = pd.read_csv(directory / FILES[0])
    analysis = pd.read_csv(directory / FILES[1])
    targets = pd.read_csv(directory / FILES[2])
    analysis = analysis.merge(targets, on="id", how="left", validate="one_to_one")
    return reference, analysis


def decision_threshold(*frames: pd.DataFrame) -> float:
    """Return the threshold ``t`` with ``y_pred == (y_pred_proba >= t)`` on every row of ``frames``.

    ``t`` is the smallest score predicted positive; raises if it does not
    reproduce ``y_pred`` everywhere.
    """
    rows = pd.concat([f[["y_pred_proba", "y_pred"]] for f in frames])
    threshold = float(rows.loc[rows["y_pred"] == 1, "y_pred_proba"].min())
    if not ((rows["y_pred_proba"] >= threshold).astype(int) == rows["y_pred"]).all():
        raise ValueError("y_pred is not y_pred_proba >= a threshold in this data")
    return threshold


def realized(chunk: pd.DataFrame) -> dict[str, float]:
    """Return the realized ROC AUC, accuracy and F1 of one labelled chunk."""
    y = chunk["repaid"].to_numpy()
    return {
        "roc_auc": float(roc_auc_score(y, chunk["y_pred_proba"])),
        "accuracy": float(accuracy_score(y, chunk["y_pred"])),
        "f1": float(f1_score(y, chunk["y_pred"])),
    }


def run_driftline(
    reference: pd.DataFrame, analysis: pd.DataFrame, chunk_size: int
) -> dict[str, Any]:
    """Fit driftline's CBPE and estimate every chunk; return timings and per-chunk estimates."""
    threshold = decision_threshold(reference, analysis)
    data_mb = current_rss_mb()
    reset_peak_rss()
    start = time.perf_counter()
    model = CBPE.fit(reference["repaid"], reference["y_pred_proba"], threshold=threshold)
    fitted = time.perf_counter()
    sketches = [
        model.sketch(analysis["y_pred_proba"].iloc[at : at + chunk_size])
        for at in range(0, len(analysis), chunk_size)
    ]
    estimates = [sketch.estimate() for sketch in sketches]
    done = time.perf_counter()
    peak_mb = peak_rss_mb()
    merged = sketches[0]
    for sketch in sketches[1:]:
        merged = merged.merge(sketch)
    return {
        "library": "driftline",
        "threshold": threshold,
        "needs_calibration": model.check.needed,
        "calibration_check": model.check.to_dict(),
        "fit_seconds": round(fitted - start, 4),
        "estimate_seconds": round(done - fitted, 4),
        "peak_rss_mb": round(peak_mb, 1),
        "data_mb": round(data_mb, 1),
        "merge_exact": merged == model.sketch(analysis["y_pred_proba"]),
        "chunks": [
            {
                "index": k,
                "start": k * chunk_size,
                "end": min((k + 1) * chunk_size, len(analysis)) - 1,
                "estimated": {m: getattr(e, m) for m in METRICS},
                "roc_auc_bound": e.roc_auc_bound,
            }
            for k, e in enumerate(estimates)
        ],
    }


def run_peer(chunk_size: int, timeout: float = 600) -> dict[str, Any]:
    """Run NannyML's CBPE in the peers' virtualenv; return its JSON (or an ``error`` entry)."""
    python = PEERS_VENV / "bin" / "python"
    command = [str(python), *PEER_RUNNER, "--chunk-size", str(chunk_size)]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return {"library": "nannyml", "error": str(error)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"library": "nannyml", "error": tail}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarise(
    truth: list[dict[str, float]], ours: dict[str, Any], peer: dict[str, Any]
) -> dict[str, dict[str, float]]:
    """Return per metric: MAE of each library against ``truth``, and their mutual differences."""
    summary: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        real = np.array([t[metric] for t in truth])
        mine = np.array([c["estimated"][metric] for c in ours["chunks"]])
        row = {"driftline_mae": float(np.mean(np.abs(mine - real))), "anchor": ANCHORS[metric]}
        if "chunks" in peer:
            theirs = np.array([c["estimated"][metric] for c in peer["chunks"]])
            peer_real = np.array([c["realized"][metric] for c in peer["chunks"]])
            row["nannyml_mae"] = float(np.mean(np.abs(theirs - real)))
            row["between_mae"] = float(np.mean(np.abs(mine - theirs)))
            row["between_max"] = float(np.max(np.abs(mine - theirs)))
            row["realized_max_difference"] = float(np.max(np.abs(peer_real - real)))
        summary[metric] = row
    return summary


SUMMARY_HEADERS = (
    "metric",
    "driftline MAE",
    "NannyML MAE",
    "anchor",
    "MAE between",
    "max between",
)
TIMING_HEADERS = ("library", "fit (s)", "estimate (s)", "total (s)", "peak RSS (MB)")


def summary_rows(summary: dict[str, dict[str, float]]) -> list[list[str]]:
    """Return the side-by-side errors per metric as table cells (``SUMMARY_HEADERS``)."""

    def cell(value: float | None, spec: str = ".6f") -> str:
        return "-" if value is None else format(value, spec)

    return [
        [
            metric,
            cell(row["driftline_mae"]),
            cell(row.get("nannyml_mae")),
            f"{row['anchor']:.4f}",
            cell(row.get("between_mae"), ".1e"),
            cell(row.get("between_max"), ".1e"),
        ]
        for metric, row in summary.items()
    ]


def timing_rows(*results: dict[str, Any]) -> list[list[str]]:
    """Return each library's fit and estimate seconds and peak RSS as cells (``TIMING_HEADERS``)."""
    rows = []
    for result in results:
        if "fit_seconds" in result:
            fit, estimate = result["fit_seconds"], result["estimate_seconds"]
            peak = result.get("peak_rss_mb")
            rows.append(
                [
                    result["library"],
                    f"{fit:.3f}",
                    f"{estimate:.3f}",
                    f"{fit + estimate:.3f}",
                    "-" if peak is None else f"{peak:.0f}",
                ]
            )
    return rows


def _table(title: str, headers: tuple[str, ...], rows: list[list[str]]) -> Table:
    out = Table(title=title)
    for at, column in enumerate(headers):
        out.add_column(column, justify="left" if at == 0 else "right")
    for row in rows:
        out.add_row(*row)
    return out


def table(summary: dict[str, dict[str, float]]) -> Table:
    """Return the side-by-side table of errors."""
    return _table(
        "CBPE on NannyML's car-loan data: estimated vs realized per chunk",
        SUMMARY_HEADERS,
        summary_rows(summary),
    )


def timings(*results: dict[str, Any]) -> Table:
    """Return each library's wall times (fit; estimate of all chunks) and peak RSS."""
    return _table("wall time and peak RSS", TIMING_HEADERS, timing_rows(*results))


def main() -> None:
    """Run both libraries on the same chunks, print the table, write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunk-size", type=int, default=5000)
    parser.add_argument("--no-peer", action="store_true", help="skip NannyML")
    parser.add_argument(
        "--json", action="store_true", help="tables to stderr; results as one JSON line to stdout"
    )
    args = parser.parse_args()
    directory = car_loan_dir()
    if directory is None:
        sys.exit(
            f"NannyML's car-loan data not found under {PEERS_VENV}: "
            "run `bash benchmarks/setup_peers.sh` (or set PEERS_VENV)"
        )
    reference, analysis = load_car_loan(directory)
    truth = [
        realized(analysis.iloc[at : at + args.chunk_size])
        for at in range(0, len(analysis), args.chunk_size)
    ]
    ours = run_driftline(reference, analysis, args.chunk_size)
    peer = {"library": "nannyml", "error": "skipped"} if args.no_peer else run_peer(args.chunk_size)
    summary = summarise(truth, ours, peer)
    console = Console(stderr=args.json)
    console.print(table(summary))
    console.print(timings(ours, peer))
    if "error" in peer:
        console.print(f"NannyML: {peer['error']}")
    console.print(f"driftline: merged chunk sketches equal the whole set's: {ours['merge_exact']}")
    for chunk, real in zip(ours["chunks"], truth, strict=True):
        chunk["realized"] = real
    results = {
        "command": " ".join(["python -m benchmarks.cbpe", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "chunk_size": args.chunk_size,
        "summary": summary,
        "driftline": ours,
        "nannyml": peer,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cbpe.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()

"""SHAP attribution and attribution drift: wall time and peak memory on seeded data.

Usage (from the repository root, in driftline's virtualenv)::

    .venv/bin/python -m benchmarks.shap_attribution [--rows 10000] [--features 20]
        [--model gb|rf] [--trees 100] [--seed 0] [--sampled-rows 1000] [--json]

Data: ``--features`` independent standard normal columns; the label is a
logistic draw on a sparse linear-plus-interaction score of the first five, so
the model relies on a few features and ignores most. A seeded scikit-learn
``GradientBoostingClassifier`` (``gb``, depth 3) or ``RandomForestClassifier``
(``rf``, depth 8) with ``--trees`` trees is fitted on ``--rows`` training rows
(untimed). The reference is ``--rows`` fresh rows from the same distribution;
the current window ``--rows`` rows in which ``f2``'s spread has doubled (so its
attribution grows) and ``f10`` (unused by the model) has shifted by one
standard deviation (input drift that should not matter).

Timed, each with the process's peak RSS (the kernel's peak mark is reset before
each step, so a step's peak is its own plus what was already resident):

* ``tree_shap``: :func:`monitor.analyses.explain.explain` (shap's TreeExplainer) on the
  current window's rows;
* ``attribution_drift``: two :class:`~detectors.attribution.AttributionSummary`
  from the SHAP frames, their comparison and the drift-impact ranking against
  the window's feature-drift effect sizes (the feature drift itself untimed);
* ``sampled_first_call`` and ``sampled_shap`` (with ``--sampled-rows`` > 0):
  the sampled (permutation) explainer on a logistic regression of the same
  data; first one row (the one-off numba compilation of a process), then
  ``--sampled-rows`` rows against a 100-row background -- what a non-tree
  model costs.

shap is imported before timing (about 2 s and 300 MB, reported as
``import_shap``). Prints a table and writes
``benchmarks/results/shap_attribution.json``. With ``--json`` the table goes to
stderr and the same results are printed to stdout as one JSON line, for
``benchmarks/compare.py``, which runs this module in its own process.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from benchmarks.peers._common import current_rss_mb, peak_rss_mb, reset_peak_rss

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def make_data(rows: int, features: int, seed: int) -> dict[str, Any]:
    """Return seeded training, reference and current frames and the training labels."""
    rng = np.random.default_rng(seed)
    columns = [f"f{j}" for j in range(features)]

    def draw(scale: np.ndarray | None = None, shift: np.ndarray | None = None) -> pd.DataFrame:
        scale = np.ones(features) if scale is None else scale
        shift = np.zeros(features) if shift is None else shift
        return pd.DataFrame(rng.normal(shift, scale, size=(rows, features)), columns=columns)

    train = draw()
    score = (
        1.5 * train["f0"]
        - 1.0 * train["f1"]
        + 0.7 * train["f2"]
        + 0.5 * train["f3"] * train["f4"]
        + 0.3 * train["f4"]
    )
    labels = (score + rng.logistic(size=rows) > 0).astype(int)
    scale, shift = np.ones(features), np.zeros(features)
    scale[2] = 2.0
    if features > 10:
        shift[10] = 1.0
    return {
        "train": train,
        "labels": labels,
        "reference": draw(),
        "current": draw(scale, shift),
    }


STEP_HEADERS = ("step", "rows explained/summarised", "wall time (s)", "peak RSS (MB)")


def step_rows(steps: list[dict[str, Any]]) -> list[list[str]]:
    """Return the timed steps as table cells (``STEP_HEADERS``)."""
    return [
        [step["step"], f"{step['rows']:,}", f"{step['seconds']:.3f}", f"{step['peak']:.0f}"]
        for step in steps
    ]


def measured(step: Callable[[], T]) -> tuple[T, float, float]:
    """Run ``step``; return its result, wall seconds and the peak RSS (MB) during it."""
    reset_peak_rss()
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start, peak_rss_mb()


def main() -> None:
    """Fit the model, time SHAP attribution and attribution drift, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--model", choices=("gb", "rf"), default="gb")
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sampled-rows", type=int, default=1000, help="0 skips the sampled run")
    parser.add_argument(
        "--json", action="store_true", help="table to stderr; results as one JSON line to stdout"
    )
    args = parser.parse_args()

    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from detectors.attribution import (
        AttributionSummary,
        attribution_drift,
        comparable_statistics,
        drift_impact_ranking,
    )
    from detectors.drift import compare_frames
    from monitor.analyses.explain import DEFAULT_BACKGROUND_ROWS, explain

    start = time.perf_counter()
    import shap  # type: ignore[import-untyped]  # noqa: F401 -- imported untimed, reported

    import_seconds = time.perf_counter() - start
    data = make_data(args.rows, args.features, args.seed)
    model: Any = (
        GradientBoostingClassifier(n_estimators=args.trees, max_depth=3, random_state=args.seed)
        if args.model == "gb"
        else RandomForestClassifier(
            n_estimators=args.trees, max_depth=8, random_state=args.seed, n_jobs=1
        )
    )
    start = time.perf_counter()
    model.fit(data["train"], data["labels"])
    fit_seconds = time.perf_counter() - start
    reference_shap = explain(model, data["reference"]).values  # untimed: the reference profile
    feature_drift = compare_frames(data["reference"], data["current"])
    baseline_mb = current_rss_mb()

    steps: list[dict[str, Any]] = []
    window, seconds, peak = measured(lambda: explain(model, data["current"]))
    steps.append(
        {"step": "tree_shap", "rows": len(window.values), "seconds": seconds, "peak": peak}
    )

    def drift() -> Any:
        reference = AttributionSummary.from_values(reference_shap)
        current = AttributionSummary.from_values(window.values)
        report = attribution_drift(reference, current)
        ranking = drift_impact_ranking(comparable_statistics(feature_drift), reference.importance())
        return report, ranking

    (report, ranking), seconds, peak = measured(drift)
    steps.append({"step": "attribution_drift", "rows": args.rows, "seconds": seconds, "peak": peak})

    if args.sampled_rows > 0:
        linear = LogisticRegression().fit(data["train"], data["labels"])
        # The first sampled explanation of a process JIT-compiles shap's numba helpers.
        _, seconds, peak = measured(lambda: explain(linear, data["current"], max_rows=1))
        steps.append({"step": "sampled_first_call", "rows": 1, "seconds": seconds, "peak": peak})
        sampled, seconds, peak = measured(
            lambda: explain(
                linear,
                data["current"],
                background=data["reference"],
                max_rows=args.sampled_rows,
                seed=args.seed,
            )
        )
        steps.append(
            {"step": "sampled_shap", "rows": len(sampled.values), "seconds": seconds, "peak": peak}
        )

    console = Console(stderr=args.json)
    table = Table(
        title=(
            f"SHAP attribution: {args.model} with {args.trees} trees, {args.features} features, "
            f"{args.rows:,} rows"
        )
    )
    for header in STEP_HEADERS:
        table.add_column(header, justify="left" if header == "step" else "right")
    for row in step_rows(steps):
        table.add_row(*row)
    console.print(table)
    console.print(
        f"import shap {import_seconds:.2f} s; model fit {fit_seconds:.2f} s (untimed); "
        f"RSS before the timed steps {baseline_mb:.0f} MB; "
        f"sampled background {DEFAULT_BACKGROUND_ROWS} rows"
    )
    console.print(
        f"attribution drift: {[f.name for f in report.drifted]}, share distance "
        f"{report.share_distance:.3f}; feature drift: {[f.name for f in feature_drift.drifted]}"
    )
    console.print(
        "drift impact (top 3): " + ", ".join(f"{d.name}={d.impact:.4f}" for d in ranking[:3])
    )
    results = {
        "command": " ".join(["python -m benchmarks.shap_attribution", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "settings": vars(args),
        "import_shap_seconds": round(import_seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        "baseline_rss_mb": round(baseline_mb, 1),
        "steps": [
            {**s, "seconds": round(s["seconds"], 4), "peak": round(s["peak"], 1)} for s in steps
        ],
        "attribution_drifted": [f.name for f in report.drifted],
        "share_distance": report.share_distance,
        "impact_top": [(d.name, d.impact) for d in ranking[:5]],
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "shap_attribution.json").write_text(json.dumps(results, indent=2) + "\n")
    if args.json:
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()

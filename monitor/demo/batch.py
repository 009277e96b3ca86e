"""``driftline demo --batch``: write an example reference/current pair and check it.

The current file drifts on a known set of features (see ``DRIFTED``), so the
report shows what a real finding looks like, with no broker or database.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from monitor.check.run import run_check
from monitor.config.drift import CheckConfig
from monitor.presentation.check import render_table

#: Features whose distribution moves in the demo's current file.
DRIFTED = ("income", "utilization", "channel")


def example_frame(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    """Return a credit-risk-like table; with ``drift`` the :data:`DRIFTED` columns move."""
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10.8 + (0.15 if drift else 0.0), 0.45, rows)
    utilization = rng.beta(2.0 + (0.8 if drift else 0.0), 5.0, rows)
    channel_p = [0.55, 0.30, 0.15] if not drift else [0.40, 0.35, 0.25]
    score = 1 / (1 + np.exp(-(rng.normal(0, 1, rows) + 0.8 * (utilization - 0.3) * 5)))
    return pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows),
            "income": income,
            "utilization": utilization,
            "tenure_months": rng.gamma(3.0, 12.0, rows),
            "region": rng.choice(["EU", "US", "APAC", "LATAM"], rows, p=[0.4, 0.35, 0.15, 0.1]),
            "channel": rng.choice(["web", "branch", "partner"], rows, p=channel_p),
            "has_card": rng.random(rows) < 0.6,
            "score": score,
        }
    )


def run_demo(rows: int, directory: Path) -> int:
    """Write ``reference.parquet`` and ``current.parquet`` under ``directory``, check, print."""
    directory.mkdir(parents=True, exist_ok=True)
    reference, current = directory / "reference.parquet", directory / "current.parquet"
    example_frame(rows, seed=1, drift=False).to_parquet(reference)
    example_frame(rows, seed=2, drift=True).to_parquet(current)
    console = Console()
    console.print(
        f"Wrote {reference} and {current} ({rows:,} rows each); "
        f"drift injected into: {', '.join(DRIFTED)}.\n"
        f"$ driftline check --reference {reference} --current {current} --prediction score"
    )
    result = run_check(reference, current, CheckConfig(), prediction="score")
    render_table(result, console)
    return 0

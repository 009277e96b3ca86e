"""``driftline check`` imports only what its path needs.

A plain check used to import kafka-python, ``scipy.stats`` and the modules
behind ``--model`` and ``--multivariate``: about 1.9 s of a 2 s run on 100,000
rows. Each test runs a fresh interpreter and looks at ``sys.modules``, not at
the clock, so it holds on a loaded machine too (the times are
``benchmarks/startup.py``'s).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Never needed by a plain check: the service's stack, the model's explainer, and the
#: heavy statistics imports (scipy.stats ~0.6 s, scikit-learn ~2 s; the default tests'
#: distributions are detectors/_distributions.py's).
FORBIDDEN = ("fastapi", "sqlalchemy", "kafka", "shap", "scipy.stats", "sklearn")

REPORT = f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"


def loaded_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the forbidden modules it left imported."""
    script = f"import json, sys\n{code}\n{REPORT}"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_check_module_loads_none_of_the_heavy_modules():
    """``import monitor.check.run`` (what ``driftline check`` imports) leaves them all out."""
    assert loaded_after("import monitor.check.run") == []


@pytest.mark.parametrize("argv", [["check", "--help"], ["--help"]], ids=["check-help", "help"])
def test_help_loads_none_of_the_heavy_modules(argv: list[str]):
    """``driftline check --help`` and ``driftline --help`` leave them all out."""
    code = f"from monitor.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
    assert loaded_after(code) == []


def test_a_plain_check_loads_none_of_the_heavy_modules(tmp_path: Path):
    """A whole check of two files larger than the exact-KS limit stays clear of them too."""
    code = f"""
import numpy as np
import pandas as pd
rng = np.random.default_rng(0)
for name, shift in (("reference", 0.0), ("current", 0.3)):
    pd.DataFrame({{
        "x": rng.normal(shift, 1.0, 12_000),
        "c": rng.choice(["a", "b", "c"], 12_000),
    }}).to_parquet({str(tmp_path)!r} + f"/{{name}}.parquet")
from monitor.cli import main
code = main(["check", "--reference", {str(tmp_path / "reference.parquet")!r},
             "--current", {str(tmp_path / "current.parquet")!r}, "--format", "json",
             "--output", {str(tmp_path / "report.json")!r}])
assert code == 0, code
"""
    assert loaded_after(code) == []

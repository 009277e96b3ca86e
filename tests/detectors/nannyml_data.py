"""NannyML's synthetic data sets for validation tests, without importing nannyml.

The data files ship inside the ``nannyml`` package, which needs pandas < 3 and
so cannot be installed next to driftline. They are read from the peers'
virtualenv when it exists (``bash benchmarks/setup_peers.sh``), otherwise
from the nannyml wheel, downloaded once with pip into ``.cache/wheels`` (the
wheel is a zip; nothing is installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from tests.servers import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
#: The nannyml release the peers' virtualenv pins (benchmarks/requirements-peers.txt).
NANNYML = "nannyml==0.13.1"
DATA = "nannyml/datasets/data/"


def read_data_files(names: tuple[str, ...]) -> tuple[pd.DataFrame, ...]:
    """Return the named CSV files of nannyml's ``datasets/data`` folder as data frames."""
    venv = Path(os.environ.get("PEERS_VENV", ROOT / ".venv-peers"))
    for directory in sorted(venv.glob("lib/python3*/site-packages/nannyml/datasets/data")):
        if all((directory / name).is_file() for name in names):
            return tuple(pd.read_csv(directory / name) for name in names)
    wheel = _wheel()
    with zipfile.ZipFile(wheel) as archive:
        return tuple(pd.read_csv(archive.open(DATA + name)) for name in names)


def _wheel() -> Path:
    cache = ROOT / ".cache" / "wheels"
    found = sorted(cache.glob("nannyml-*.whl"))
    if found:
        return found[-1]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(cache)]
    done = subprocess.run([*command, NANNYML], capture_output=True, text=True, check=False)
    found = sorted(cache.glob("nannyml-*.whl"))
    if done.returncode != 0 or not found:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        skip_or_fail(f"cannot download {NANNYML} for its data sets: {tail}")
    return found[-1]

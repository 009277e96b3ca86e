"""Alibi Detect peer runner: ``TabularDrift`` (KS on numeric, chi2 on categorical), p_val=0.05.

Usage (from the repository root, with the peers' virtualenv)::

    .venv-peers/bin/python benchmarks/peers/run_alibi.py --rows 100000 --seed 0

``TabularDrift`` takes one numeric array, so the timed part starts by encoding
each categorical column as integer codes of the reference's categories (a level
unseen in the reference becomes -1, which TabularDrift counts as one more
category) and passes those codes as ``categories_per_feature``. ``predict`` runs
with the default ``drift_type="batch"`` and ``correction="bonferroni"``: the
returned ``threshold`` is ``p_val / n_features``, a feature is flagged when its
returned p-value is below that threshold, and ``is_drift`` (any feature below
it) is the dataset verdict.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np
import numpy.typing as npt
import pandas as pd

from benchmarks.peers._common import Detection, run


def warm_up() -> str:
    """Import Alibi Detect's drift detectors (untimed) and return the version."""
    import alibi_detect
    from alibi_detect.cd import TabularDrift  # noqa: F401

    return str(alibi_detect.__version__)


def encode(
    reference: pd.DataFrame, current: pd.DataFrame
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], dict[int, list[int]]]:
    """Return both frames as float arrays plus ``categories_per_feature`` for TabularDrift.

    Object columns become integer codes of the reference's categories; numeric
    columns pass through unchanged, in the frames' column order.
    """
    ref_columns: list[npt.NDArray[np.generic]] = []
    cur_columns: list[npt.NDArray[np.generic]] = []
    categories_per_feature: dict[int, list[int]] = {}
    for index, name in enumerate(reference.columns):
        if reference[name].dtype == object:
            categories = pd.Categorical(reference[name]).categories
            ref_columns.append(pd.Categorical(reference[name], categories=categories).codes)
            cur_columns.append(pd.Categorical(current[name], categories=categories).codes)
            categories_per_feature[index] = list(range(len(categories)))
        else:
            ref_columns.append(reference[name].to_numpy())
            cur_columns.append(current[name].to_numpy())
    x_ref = np.column_stack(ref_columns).astype(np.float64)
    x_cur = np.column_stack(cur_columns).astype(np.float64)
    return x_ref, x_cur, categories_per_feature


def detect(reference: pd.DataFrame, current: pd.DataFrame) -> Detection:
    """Encode, fit ``TabularDrift`` on the reference and predict on the current frame."""
    from alibi_detect.cd import TabularDrift

    x_ref, x_cur, categories_per_feature = encode(reference, current)
    detector = TabularDrift(x_ref, p_val=0.05, categories_per_feature=categories_per_feature)
    prediction = detector.predict(x_cur)["data"]
    below = np.asarray(prediction["p_val"]) < prediction["threshold"]
    flagged = [str(name) for name, drifted in zip(reference.columns, below, strict=True) if drifted]
    return Detection(flagged=flagged, dataset_drift=bool(prediction["is_drift"]))


if __name__ == "__main__":
    run("alibi-detect", warm_up, detect)

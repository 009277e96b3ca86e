"""A partition's window row sample is exact: batches, bounds and restarts do not change it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.sample import RowSample, candidate_rows, hash_ids
from monitor.analyses.model import PREDICTION, ModelRuntime
from monitor.analyses.reference import build_profile
from monitor.config.service import ModelConfig
from monitor.records import PredictionRecord
from monitor.streaming.aggregate import PartitionState
from monitor.streaming.sketching import record_keys, sketch_records

SIZE = 50


def runtime_and_records(rows: int, seed: int) -> tuple[ModelRuntime, list[PredictionRecord]]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "k": rng.choice(["a", "b", "c", "d"], rows),
            "flag": rng.random(rows) < 0.3,
            "prediction": rng.random(rows),
        }
    )
    frame.loc[rng.random(rows) < 0.05, "x"] = np.nan
    config = ModelConfig.model_validate(
        {
            "name": "m",
            "prediction": {"field": "score"},
            "window": {"size": "1h", "allowed_lateness": "0s"},
            "multivariate": {"current_rows": SIZE, "reference_rows": 100},
        }
    )
    runtime = ModelRuntime(config, build_profile(config, frame), 1)
    records = [
        PredictionRecord(
            model="m",
            model_version=None,
            request_id=None,
            event_time=float(i),  # all in one window
            features={
                "x": None if np.isnan(row.x) else float(row.x),
                "k": row.k,
                "flag": bool(row.flag),
            },
            prediction={"label": None, "score": float(row.prediction)},
            explanations=None,
        )
        for i, row in enumerate(frame.itertuples(index=False))
    ]
    return runtime, records


def whole(runtime: ModelRuntime, records: list[PredictionRecord], offsets: range) -> RowSample:
    """The sample of every record at once, built through the library's frame path."""
    specs = {n: s for n, s in runtime.profile.specs.items() if n != PREDICTION}
    frame = pd.DataFrame([r.features for r in records])
    encoded = np.column_stack([specs[n].encode(frame[n]) for n in specs])
    return RowSample.from_rows(
        list(specs),
        [s.levels for s in specs.values()],
        encoded,
        record_keys(3, offsets),
        size=SIZE,
        hashed=True,
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_batches_give_the_sample_of_the_whole_window(seed: int) -> None:
    runtime, records = runtime_and_records(3000, seed)
    offsets = range(100, 100 + len(records))
    state = PartitionState(topic="t", partition=3)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(records)), size=40, replace=False))
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        state.add(
            {"m": runtime}, records[lo:hi], offsets[hi - 1] + 1, now=0.0, offsets=offsets[lo:hi]
        )
    (partial,) = state.partials.values()
    assert partial.sketch.sample is not None
    assert partial.sketch.sample == whole(runtime, records, offsets)
    assert partial.sketch.sample.seen == len(records)


def test_a_restored_partition_continues_the_same_sample() -> None:
    """Checkpoint halfway, restore from the stored rows, continue: the sample is unchanged."""
    runtime, records = runtime_and_records(2000, 5)
    offsets = range(len(records))
    first = PartitionState(topic="t", partition=3)
    first.add({"m": runtime}, records[:1100], 1100, now=0.0, offsets=offsets[:1100])
    partials, progress = first.rows()
    restored = PartitionState.restore("t", 3, progress[0], partials, {"m": {1: runtime.profile}})
    restored.add({"m": runtime}, records[1100:], 2000, now=0.0, offsets=offsets[1100:])
    (partial,) = restored.partials.values()
    assert partial.sketch.sample == whole(runtime, records, offsets)


def test_the_bound_skips_rows_that_cannot_enter() -> None:
    keys = hash_ids(np.arange(10_000))
    bound = np.sort(keys)[99]
    positions = candidate_rows(keys, 500, bound)
    assert positions.size == 100  # only keys at or below the bound remain
    assert set(positions) == set(np.flatnonzero(keys <= bound))
    assert candidate_rows(keys, 500).size == 500


def test_a_sketch_without_keys_is_keyed_by_position() -> None:
    runtime, records = runtime_and_records(200, 9)
    sketch = sketch_records(runtime, records)
    assert sketch.sample is not None
    assert sketch.sample.rows == SIZE
    assert sketch.sample.seen == 200

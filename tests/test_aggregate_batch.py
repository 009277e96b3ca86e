"""Sketching a poll across many models at once gives the sketches of the per-model path.

:meth:`PartitionState.add` bins the numeric columns of every model of a poll
in one vectorised pass and accumulates counts per partial; the reference is
:func:`monitor.streaming.sketching.sketch_records` (the per-model path) on all
of a window's records at once. Counts, tallies, minimum and maximum must be
equal exactly, the float sums up to addition order.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from detectors.sketch import NumericSketch, NumericSpec, WindowSketch
from monitor.analyses.model import ModelRuntime
from monitor.analyses.reference import build_profile
from monitor.config.service import ModelConfig
from monitor.records import PredictionRecord
from monitor.streaming import sketching
from monitor.streaming.aggregate import PartitionState
from monitor.streaming.partials import partial_from_bytes
from monitor.streaming.sketching import sketch_records

ODD = [None, float("nan"), float("inf"), float("-inf"), "n/a", "2.5", True, False, 7, 1e300]


def model(name: str, seed: int, *, label: bool = False, hop: bool = False) -> ModelRuntime:
    """A model of numeric, boolean and categorical features; a score or a label prediction."""
    rng = np.random.default_rng(seed)
    rows = 3000
    frame = pd.DataFrame({f"x{i}": rng.normal(seed, 1 + i, rows) for i in range(6)})
    frame["small"] = rng.integers(0, 4, rows).astype(float)  # few distinct values: tied edges
    frame["flag"] = rng.random(rows) < 0.3
    frame["k"] = rng.choice(["a", "b", "c"], rows)
    frame["prediction"] = rng.choice(["yes", "no"], rows) if label else rng.random(rows)
    window = {"size": "1m", "hop": "30s"} if hop else {"size": "1m"}
    field = "label" if label else "score"
    config = ModelConfig.model_validate(
        {"name": name, "prediction": {"field": field}, "window": window}
    )
    return ModelRuntime(config, build_profile(config, frame), 1)


def traffic(runtimes: dict[str, ModelRuntime], n: int, seed: int) -> list[PredictionRecord]:
    """Skewed records over the models, with missing, absent, infinite and invalid values."""
    rng = np.random.default_rng(seed)
    names = list(runtimes)
    weights = 1 / np.arange(1, len(names) + 1)
    out = []
    for i in range(n):
        name = names[rng.choice(len(names), p=weights / weights.sum())]
        features: dict[str, object] = {f"x{j}": float(rng.normal(0, 3)) for j in range(6)}
        features["small"] = float(rng.integers(-1, 6))
        features["flag"] = bool(rng.random() < 0.5)
        features["k"] = str(rng.choice(["a", "b", "z"]))
        if rng.random() < 0.2:
            features[f"x{rng.integers(0, 6)}"] = ODD[rng.integers(0, len(ODD))]
        if rng.random() < 0.05:
            del features["x5"]
        if rng.random() < 0.05:
            features["flag"] = None
        label = runtimes[name].config.prediction.field == "label"
        prediction = (
            {"label": str(rng.choice(["yes", "no", "maybe"])), "score": None}
            if label
            else {"label": None, "score": None if rng.random() < 0.03 else float(rng.random())}
        )
        out.append(
            PredictionRecord(
                model=name,
                model_version=None,
                request_id=None,
                event_time=1_800_000_000.0 + i * 0.05,
                features=features,  # type: ignore[arg-type]
                prediction=prediction,
                explanations=None,
            )
        )
    return out


def per_window(
    runtimes: dict[str, ModelRuntime], records: list[PredictionRecord]
) -> dict[tuple[str, float], WindowSketch]:
    """The per-model path's sketch of every window, from all of its records at once."""
    members: dict[tuple[str, float], list[PredictionRecord]] = {}
    for record in records:
        for start, _ in runtimes[record.model].window.windows_for(record.event_time):
            members.setdefault((record.model, start), []).append(record)
    return {key: sketch_records(runtimes[key[0]], rs) for key, rs in members.items()}


def assert_same(got: WindowSketch, expected: WindowSketch) -> None:
    assert got == expected
    assert list(got.features) == list(expected.features)
    for name, sketch in expected.features.items():
        mine = got.features[name]
        assert np.array_equal(mine.counts, sketch.counts), name
        if isinstance(sketch, NumericSketch):
            assert isinstance(mine, NumericSketch)
            assert (mine.missing, mine.infinite, mine.invalid) == (
                sketch.missing,
                sketch.infinite,
                sketch.invalid,
            ), name
            assert np.array_equal([mine.min, mine.max], [sketch.min, sketch.max], equal_nan=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_over_many_models_give_the_per_model_sketches(seed: int) -> None:
    runtimes = {f"m{i}": model(f"m{i}", i, label=i % 4 == 3, hop=i % 5 == 4) for i in range(12)}
    records = traffic(runtimes, 4000, seed)
    state = PartitionState(topic="t", partition=0)
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, len(records)), size=30, replace=False))
    for lo, hi in zip([0, *cuts], [*cuts, len(records)], strict=True):
        state.add(runtimes, records[lo:hi], int(hi), now=0.0, offsets=range(lo, hi))
    expected = per_window(runtimes, records)
    assert set(state.partials) == set(expected)
    for key, sketch in expected.items():
        assert_same(state.partials[key].sketch, sketch)
    # What a checkpoint writes decodes to the same sketches.
    partials, _ = state.rows()
    assert len(partials) == len(expected)
    for row in partials:
        runtime = runtimes[row.model]
        stored = partial_from_bytes(row.sketch, lambda version, r=runtime: r.profile)
        assert row.rows == expected[(row.model, row.window_start)].rows
        assert_same(stored.sketch, expected[(row.model, row.window_start)])


def test_a_restored_partition_keeps_accumulating_the_same_sketch() -> None:
    runtimes = {f"m{i}": model(f"m{i}", i, label=i == 2) for i in range(4)}
    records = traffic(runtimes, 1500, 7)
    first = PartitionState(topic="t", partition=0)
    first.add(runtimes, records[:700], 700, now=0.0)
    partials, progress = first.rows()
    profiles = {name: {1: r.profile} for name, r in runtimes.items()}
    restored = PartitionState.restore("t", 0, progress[0], partials, profiles)
    restored.add(runtimes, records[700:1100], 1100, now=0.0)
    restored.add(runtimes, records[1100:], 1500, now=0.0)
    for key, sketch in per_window(runtimes, records).items():
        assert_same(restored.partials[key].sketch, sketch)


def test_a_sketch_read_between_polls_is_not_stale() -> None:
    runtimes = {"m0": model("m0", 0)}
    records = traffic(runtimes, 300, 3)
    state = PartitionState(topic="t", partition=0)
    state.add(runtimes, records[:100], 100, now=0.0)
    (key,) = state.partials
    assert state.partials[key].sketch.rows == 100
    state.add(runtimes, records[100:], 300, now=0.0)
    assert_same(state.partials[key].sketch, per_window(runtimes, records)[key])


@pytest.mark.parametrize("dense_shift", [0, 3, 62], ids=["sort", "mixed", "count"])
def test_accumulators_that_fold_often_count_the_same(
    monkeypatch: pytest.MonkeyPatch, dense_shift: int
) -> None:
    monkeypatch.setattr(sketching, "FOLD_AFTER", 7)  # fold after almost every poll
    # Which folds count into a dense array instead of sorting: none, the busy ones, all.
    monkeypatch.setattr(sketching, "_DENSE_SHIFT", dense_shift)
    runtimes = {f"m{i}": model(f"m{i}", i) for i in range(3)}
    records = traffic(runtimes, 900, 11)
    state = PartitionState(topic="t", partition=0)
    for lo in range(0, 900, 50):
        state.add(runtimes, records[lo : lo + 50], lo + 50, now=0.0)
    for key, sketch in per_window(runtimes, records).items():
        assert_same(state.partials[key].sketch, sketch)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_vectorised_search_bins_values_as_searchsorted_does(seed: int) -> None:
    """Few and many edges, values on the edges and next to them, NaN and infinities."""
    rng = np.random.default_rng(seed)
    specs = {}
    for length in (0, 1, 2, 31, 32, 33, 63, 64, 65, 1000, 1001):
        edges = np.unique(rng.normal(size=length * 2))[:length]
        specs[f"e{length}"] = NumericSpec(name=f"e{length}", edges=edges, coarse_edges=edges[:1])
    runtime = SimpleNamespace(profile=SimpleNamespace(specs=specs))
    layout = sketching.numeric_layout(runtime)  # type: ignore[arg-type]
    acc = sketching.NumericAccumulator.empty(layout)
    columns = {}
    for name, spec in specs.items():
        picks = rng.normal(size=300)
        if spec.edges.size:  # values exactly on edges, just above and just below them
            on = rng.choice(spec.edges, 60)
            picks[:60] = on
            picks[60:80] = np.nextafter(on[:20], np.inf)
            picks[80:100] = np.nextafter(on[20:40], -np.inf)
        picks[100:103] = [np.nan, np.inf, -np.inf]
        columns[name] = picks
    records = [
        PredictionRecord(
            model="m",
            model_version=None,
            request_id=None,
            event_time=0.0,
            features={name: float(values[i]) for name, values in columns.items()},
            prediction={"label": None, "score": None},
            explanations=None,
        )
        for i in range(300)
    ]
    sketching.accumulate_numeric([(runtime, acc, records[:150]), (runtime, acc, records[150:])])  # type: ignore[list-item]
    got = acc.sketches()
    for name, spec in specs.items():
        values = columns[name]
        finite = values[np.isfinite(values)]
        expected = NumericSketch.from_values(spec, finite, missing=1, infinite=2)
        assert np.array_equal(got[name].counts, expected.counts), name
        assert got[name] == expected, name

"""Aggregation cost and partial sizes for a fleet of models (the ingest hot path, no Kafka).

Usage::

    .venv/bin/python -m benchmarks.aggregation [--models 500] [--features 30] [--records 200000]
        [--partitions 12] [--poll 2000] [--checkpoint-every 25] [--zipf 1.1] [--reference-rows 2000]
        [--profiles 500] [--window-s 60] [--rate 3000] [--seed 0] [--profile-out FILE]

Builds a synthetic fleet of ``--models`` models with ``--features`` numeric
features each (reference profiles built from seeded data; ``--profiles``
distinct profiles, shared round-robin when fewer than the models), then feeds
``--records`` seeded prediction records through one real
:class:`monitor.streaming.aggregate.PartitionState` per partition, as the Ingestor
does: in polls of ``--poll`` decoded records (poll ``i`` from partition
``i % --partitions``), with a checkpoint of every partition (``rows()``, then
``mark_clean()`` and ``forget_closed()``) every ``--checkpoint-every`` polls
(the default, 25 polls of 2,000, is the service's ``checkpoint_records``: 50,000).
Traffic over models is Zipf-like (model ``k`` gets weight ``1 / k ** zipf``),
event time advances at ``--rate`` records per second over 1-minute windows
(``--window-s``); a few values are missing, infinite or strings.

Prints records/s of aggregation (add + checkpoint rows), CPU seconds per
record (the per-profile numeric layouts are built before timing: a one-off
cost, printed apart), and the sizes of the partial payloads written (the ``sketch`` bytes of
every row ``rows()`` returned: p50/p99/max, and for partials of 90-110 rows).
``--profile-out`` writes a cProfile of the timed part.
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd

from monitor.analyses.model import ModelRuntime
from monitor.analyses.reference import build_profile
from monitor.config.service import ModelConfig
from monitor.records import PredictionRecord
from monitor.streaming.aggregate import PartitionState

try:
    from monitor.streaming.sketching import numeric_layout
except ImportError:  # driftline before the vectorised path (a baseline run): no layouts
    numeric_layout = None  # type: ignore[assignment]


def fleet(
    models: int, features: int, profiles: int, reference_rows: int, window_s: float, seed: int
) -> dict[str, ModelRuntime]:
    """One runtime per model; its profile is built from seeded reference data."""
    rng = np.random.default_rng(seed)
    built = []
    for p in range(min(profiles, models)):
        frame = pd.DataFrame(
            {
                f"f{i:02d}": rng.normal(loc=p % 7, scale=1.0 + i % 3, size=reference_rows)
                for i in range(features)
            }
        )
        frame["prediction"] = rng.random(reference_rows)
        config = ModelConfig.model_validate(
            {"name": f"m{p:04d}", "prediction": {"field": "score"}, "window": {"size": window_s}}
        )
        built.append(build_profile(config, frame))
    runtimes = {}
    for m in range(models):
        config = ModelConfig.model_validate(
            {"name": f"m{m:04d}", "prediction": {"field": "score"}, "window": {"size": window_s}}
        )
        runtimes[config.name] = ModelRuntime(config, built[m % len(built)], 1)
    return runtimes


def traffic(
    names: Sequence[str], features: int, records: int, zipf: float, rate: float, seed: int
) -> list[PredictionRecord]:
    """Seeded decoded records, Zipf-like over ``names``, event time at ``rate`` records/s."""
    rng = np.random.default_rng(seed + 1)
    weights = 1.0 / np.arange(1, len(names) + 1) ** zipf
    chosen = rng.choice(len(names), size=records, p=weights / weights.sum())
    values = rng.normal(loc=(chosen % 7)[:, None], scale=1.5, size=(records, features))
    scores = rng.random(records)
    odd = rng.random((records, features))
    keys = [f"f{i:02d}" for i in range(features)]
    start = 1_800_000_000.0
    out = []
    for r in range(records):
        row: dict[str, object] = dict(zip(keys, values[r].tolist(), strict=True))
        if odd[r, 0] < 0.01:
            row[keys[0]] = None  # missing
        if odd[r, 1] < 0.002:
            row[keys[1]] = "n/a"  # invalid: a string in a numeric feature
        if odd[r, 2] < 0.005:
            del row[keys[2]]  # absent
        out.append(
            PredictionRecord(
                model=names[chosen[r]],
                model_version=None,
                request_id=None,
                event_time=start + r / rate,
                features=row,  # type: ignore[arg-type]
                prediction={"label": None, "score": float(scores[r])},
                explanations=None,
            )
        )
    return out


def run(
    runtimes: dict[str, ModelRuntime],
    records: list[PredictionRecord],
    partitions: int,
    poll: int,
    checkpoint_every: int,
) -> tuple[float, float, float, list[tuple[int, int]], list[PartitionState]]:
    """Feed ``records`` in polls; return wall s, CPU s, CPU s in rows(), (rows, bytes), states."""
    states = [PartitionState(topic="predictions", partition=p) for p in range(partitions)]
    written: list[tuple[int, int]] = []
    in_rows = 0.0
    wall, cpu = time.perf_counter(), time.process_time()
    for n, first in enumerate(range(0, len(records), poll), start=1):
        batch = records[first : first + poll]
        offsets = range(first, first + len(batch))
        states[(n - 1) % partitions].add(runtimes, batch, first + len(batch), 0.0, offsets)
        if n % checkpoint_every == 0 or first + poll >= len(records):
            t = time.process_time()
            for state in states:
                partials, _ = state.rows()
                written.extend((row.rows, len(row.sketch)) for row in partials)
            in_rows += time.process_time() - t
            for state in states:
                state.mark_clean()
                state.forget_closed(runtimes)
    return time.perf_counter() - wall, time.process_time() - cpu, in_rows, written, states


def main() -> None:
    """Print throughput, CPU per record and partial payload sizes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=500, help="models in the fleet")
    parser.add_argument("--features", type=int, default=30, help="numeric features per model")
    parser.add_argument("--records", type=int, default=200_000, help="records fed in all")
    parser.add_argument("--partitions", type=int, default=12, help="partitions (one state each)")
    parser.add_argument("--poll", type=int, default=2000, help="decoded records per poll")
    parser.add_argument("--checkpoint-every", type=int, default=25, help="polls per checkpoint")
    parser.add_argument("--zipf", type=float, default=1.1, help="exponent of the model skew")
    parser.add_argument("--reference-rows", type=int, default=2000, help="rows per reference")
    parser.add_argument("--profiles", type=int, default=500, help="distinct reference profiles")
    parser.add_argument("--window-s", type=float, default=60.0, help="window size, seconds")
    parser.add_argument("--rate", type=float, default=3000.0, help="event-time records/s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile-out", help="write a cProfile of the timed part here")
    args = parser.parse_args()

    t = time.perf_counter()
    runtimes = fleet(
        args.models, args.features, args.profiles, args.reference_rows, args.window_s, args.seed
    )
    records = traffic(list(runtimes), args.features, args.records, args.zipf, args.rate, args.seed)
    print(
        f"fleet: {args.models} models x {args.features} numeric features (+ prediction), "
        f"{args.records:,} records, {args.partitions} partitions, polls of {args.poll}, "
        f"checkpoint every "
        f"{args.checkpoint_every} polls; setup {time.perf_counter() - t:.1f} s"
    )
    warm = time.process_time()
    for runtime in runtimes.values() if numeric_layout is not None else ():
        numeric_layout(runtime)  # a one-off cost per profile (the service's first poll pays it)
    warm = time.process_time() - warm
    profiler = cProfile.Profile() if args.profile_out else None
    if profiler is not None:
        profiler.enable()
    wall, cpu, in_rows, written, states = run(
        runtimes, records, args.partitions, args.poll, args.checkpoint_every
    )
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile_out)
    n = len(records)
    sizes = np.array([b for _, b in written], dtype=np.float64)
    small = np.array([b for rows, b in written if 90 <= rows <= 110], dtype=np.float64)
    print(
        f"aggregation: {n / wall:,.0f} records/s, {cpu / n * 1e6:.1f} us CPU/record "
        f"({cpu:.2f} CPU s, {wall:.2f} s wall for {n:,} records)"
    )
    print(f"  of which rows() (serialising partials): {in_rows:.2f} CPU s of {cpu:.2f}")
    print(f"  not counted: the numeric layouts of the {len(runtimes)} profiles, {warm:.2f} CPU s")
    print(
        f"partials written: {sizes.size:,}, {sizes.sum() / 1e6:.1f} MB; bytes p50 "
        f"{np.percentile(sizes, 50):,.0f}, p99 {np.percentile(sizes, 99):,.0f}, "
        f"max {sizes.max():,.0f}"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    in_memory = sum(len(state.partials) for state in states)
    print(
        f"peak RSS {peak:,.0f} MB (records and profiles included); "
        f"partials in memory at the end: {in_memory:,}"
    )
    if small.size:
        print(
            f"partials of 90-110 rows: {small.size:,}, bytes p50 {np.percentile(small, 50):,.0f}, "
            f"max {small.max():,.0f}"
        )


if __name__ == "__main__":
    main()

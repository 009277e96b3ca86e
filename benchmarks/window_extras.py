"""What joint and attribution drift add to the service's hot path, per record.

Usage::

    .venv/bin/python -m benchmarks.window_extras [--records 2000] [--repeat 20]

Sketches one batch of seeded prediction records (15 numeric, 4 categorical and
1 boolean feature, a score, three explanations) the way a partition's batch is
sketched on ingest (:func:`monitor.streaming.sketching.sketch_records`), for a model
without and with a ``multivariate`` section (a 1,000-row sample per window),
once more with the window's sample already full after 10,000 and 100,000
earlier records (only rows under its bound are encoded), and times the row
keys (:func:`monitor.streaming.sketching.record_keys`) and the per-partial SHAP summary
of the records' ``explanations`` (:func:`monitor.analyses.attribution.records_attribution`).
Prints microseconds per record, the best of ``--repeat`` timings of each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from monitor.analyses.attribution import records_attribution
from monitor.analyses.model import ModelRuntime
from monitor.analyses.reference import build_profile
from monitor.config.service import ModelConfig
from monitor.records import PredictionRecord
from monitor.streaming.sketching import record_keys, sketch_records


def make_frame(rows: int, seed: int) -> pd.DataFrame:
    """Seeded rows of the benchmark's features and score."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"n{i}": rng.normal(size=rows) for i in range(15)})
    for i in range(4):
        frame[f"c{i}"] = rng.choice(list("abcdefgh"), rows)
    frame["flag"] = rng.random(rows) < 0.3
    frame["prediction"] = rng.random(rows)
    return frame


def make_records(frame: pd.DataFrame) -> list[PredictionRecord]:
    """One decoded record per row (as the consumer hands them to the aggregator)."""
    records = []
    for row in frame.to_dict("records"):
        score = float(row.pop("prediction"))
        records.append(
            PredictionRecord(
                model="m",
                model_version=None,
                request_id=None,
                event_time=0.0,
                features={k: v.item() if hasattr(v, "item") else v for k, v in row.items()},
                prediction={"label": None, "score": score},
                explanations={f"n{i}": float(row[f"n{i}"]) for i in range(3)},
            )
        )
    return records


def best(step: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` runs of ``step``, in seconds."""
    step()  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Print the per-record cost of each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    reference = make_frame(20_000, seed=0)
    records = make_records(make_frame(args.records, seed=1))
    keys = record_keys(0, range(len(records)))
    per_record = 1e6 / len(records)
    for label, extra in (("sketch", {}), ("sketch + row sample", {"multivariate": {}})):
        config = ModelConfig.model_validate(
            {"name": "m", "prediction": {"field": "score"}, **extra}
        )
        runtime = ModelRuntime(config, build_profile(config, reference), 1)
        seconds = best(lambda r=runtime: sketch_records(r, records, keys=keys), args.repeat)
        print(f"{label:<40} {seconds * per_record:7.2f} us/record")
    # Once the window's partial holds a full sample, only rows under its bound are encoded.
    for before in (10_000, 100_000):
        window_keys = record_keys(0, range(args.records, args.records + before))
        bound = np.sort(window_keys)[runtime.sample_size - 1]  # type: ignore[operator]
        seconds = best(
            lambda b=bound: sketch_records(runtime, records, keys=keys, sample_bound=b),
            args.repeat,
        )
        label = f"sketch + row sample, {before:,} rows before"
        print(f"{label:<40} {seconds * per_record:7.2f} us/record")
    seconds = best(lambda: record_keys(0, range(len(records))), args.repeat)
    print(f"{'row keys':<40} {seconds * per_record:7.2f} us/record")
    seconds = best(lambda: records_attribution(records), args.repeat)
    print(f"{'explanations summary':<40} {seconds * per_record:7.2f} us/record")


if __name__ == "__main__":
    main()

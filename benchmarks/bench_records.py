"""Decoding speed of prediction records: prints records/s on one core.

Run: ``.venv/bin/python -m benchmarks.bench_records [--records N]``.

The records are realistic: 15 numeric and 5 categorical features, an object
prediction, two explanations, an ISO timestamp; about 600 bytes each. A second
line measures records that carry a ``NaN`` literal, which orjson rejects and
the decoder re-parses with the standard library (see ``monitor.records``).
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson

from monitor.records import InvalidRecord, decode_prediction

CATEGORIES = ["EU", "US", "APAC", "LATAM", "MEA", "other"]


def make_records(count: int, seed: int = 7, *, nan: bool = False) -> list[bytes]:
    """Return ``count`` encoded prediction records (with a ``NaN`` feature if ``nan``)."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    records = []
    for i in range(count):
        features: dict[str, object] = {
            f"num_{j:02d}": round(rng.gauss(0.0, 1.0), 4) for j in range(15)
        }
        features.update({f"cat_{j}": rng.choice(CATEGORIES) for j in range(5)})
        if nan:
            features["num_00"] = float("nan")
        stamp = start + timedelta(milliseconds=i * 37)
        doc = {
            "model": "credit-risk",
            "model_version": "7",
            "request_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "features": features,
            "prediction": {
                "label": rng.choice(["approve", "reject"]),
                "score": round(rng.random(), 4),
            },
            "explanations": {
                "num_00": round(rng.gauss(0, 0.3), 4),
                "num_01": round(rng.gauss(0, 0.3), 4),
            },
        }
        records.append(json.dumps(doc).encode() if nan else orjson.dumps(doc))
    return records


def measure(records: list[bytes], decode: Callable[[bytes], object] = decode_prediction) -> float:
    """Decode every record once; return records per second (best of three runs)."""
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for raw in records:
            decode(raw)
        best = min(best, time.perf_counter() - began)
    return len(records) / best


def main() -> None:
    """Print the decoding rate of plain records and of records with a NaN literal."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()

    plain = make_records(args.records)
    with_nan = make_records(args.records // 10, nan=True)
    for name, records in (("plain", plain), ("NaN literal", with_nan)):
        if any(isinstance(decode_prediction(raw, 0), InvalidRecord) for raw in records[:100]):
            raise SystemExit(f"benchmark records ({name}) do not validate")
    size = sum(map(len, plain)) / len(plain)
    print(f"{len(plain)} records, {size:.0f} bytes on average, 20 features")
    print(f"plain records:         {measure(plain):>10,.0f} records/s")
    print(f"with a NaN literal:    {measure(with_nan):>10,.0f} records/s (stdlib fallback)")
    print(f"orjson.loads alone:    {measure(plain, orjson.loads):>10,.0f} records/s (upper bound)")


if __name__ == "__main__":
    main()

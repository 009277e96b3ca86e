"""``driftline replay``: feed a JSON-lines or Parquet prediction log through the service's windows.

The records go through the same validation, windows, sketches, storage and
evaluation as records from Kafka; at the end of the file every window is
evaluated (the watermark is taken as +infinity). Invalid lines are counted by
reason and reported, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from prometheus_client import CollectorRegistry

from detectors.window_result import WindowResult
from monitor.config.service import ServiceConfig
from monitor.datafiles import InputError
from monitor.metrics import Metrics
from monitor.records import InvalidRecord, PredictionRecord, decode_prediction, route
from monitor.service.run import load_runtimes
from monitor.store import Store
from monitor.streaming.aggregate import PartitionState
from monitor.streaming.evaluate import Evaluator

#: Top-level record fields; in a flat Parquet log every other column is a feature.
RECORD_FIELDS = ("model", "model_version", "request_id", "timestamp", "prediction", "explanations")
BATCH = 5000


@dataclass
class ReplayResult:
    """What a replay did: records counted, late and invalid (by reason), windows evaluated."""

    counted: int = 0
    late: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    windows: list[WindowResult] = field(default_factory=list)


def raw_records(path: Path) -> Iterator[bytes]:
    """Yield each record of a JSON-lines or Parquet log as JSON bytes."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"log file not found: {path}")
    if suffix in (".jsonl", ".ndjson", ".json"):
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield line.rstrip(b"\r\n")
        return
    if suffix not in (".parquet", ".pq"):
        raise InputError(f"log file {path} must be JSON lines or Parquet")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:
        raise InputError(f"cannot read log file {path} as parquet: {exc}") from exc
    nested = "features" in table.columns
    features = [c for c in table.columns if c not in RECORD_FIELDS]
    for row in table.to_dict("records"):
        record: dict[str, Any] = {k: row[k] for k in RECORD_FIELDS if k in row}
        if not nested:
            record["features"] = {name: row[name] for name in features}
        else:
            record["features"] = row["features"]
        if isinstance(record.get("timestamp"), pd.Timestamp):
            record["timestamp"] = record["timestamp"].isoformat()
        yield orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY, default=_plain)


def _plain(value: Any) -> Any:
    if pd.isna(value):
        return None
    return str(value)


def replay(config: ServiceConfig, path: Path, metrics: Metrics | None = None) -> ReplayResult:
    """Replay the log at ``path`` into the configured database and evaluate every window."""
    metrics = metrics or Metrics(CollectorRegistry())
    store = Store.connect(config.database_url())
    try:
        runtimes = load_runtimes(config, store)
        known = frozenset(runtimes)
        state = PartitionState(topic=f"replay:{path.name}", partition=0)
        result = ReplayResult()
        batch: list[PredictionRecord] = []
        lines: list[int] = []  # the batch's line numbers: its records' offsets
        offset = 0

        def flush() -> None:
            outcome = state.add(runtimes, batch, offset, now=0.0, offsets=lines)
            result.counted += sum(outcome.counted.values())
            result.late += sum(outcome.late.values())
            batch.clear()
            lines.clear()

        for offset, raw in enumerate(raw_records(path), start=1):
            decoded = decode_prediction(raw, max_bytes=config.consumer.max_record_bytes)
            if isinstance(decoded, PredictionRecord):
                decoded = route(decoded, known)
            if isinstance(decoded, InvalidRecord):
                result.invalid[decoded.reason.value] += 1
                metrics.records_invalid_total.labels(
                    model=decoded.model or "unknown", reason=decoded.reason.value
                ).inc()
                continue
            batch.append(decoded)
            lines.append(offset)
            if len(batch) >= BATCH:
                flush()
        flush()
        partials, progress = state.rows()
        store.checkpoint(config.consumer.group_id, partials, progress)
        evaluator = Evaluator(config, store, runtimes, metrics, owner="replay")
        result.windows = sorted(
            evaluator.run_once(final=True), key=lambda o: (o.model, o.window_start)
        )
        return result
    finally:
        store.close()

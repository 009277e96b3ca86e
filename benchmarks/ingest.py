"""End-to-end ingest throughput: broker -> stored partial sketches, against bare consumers.

Run from the repository root, in driftline's virtualenv::

    .venv/bin/python -m benchmarks.ingest --records 500000 [--partitions 4] [--repeat 1]
        [--consumers bare driftline bare-confluent driftline-confluent]

What happens, in order:

1. A Tansu broker (the embedded Kafka-protocol broker of the tests, see DESIGN.md) starts
   on a free port and a topic with ``--partitions`` partitions is created.
2. ``--records`` seeded prediction records are produced to it by ``--producers`` producer
   processes: 20 features (15 numbers, of which 3 small integer ones profile as categorical,
   4 string categories, 1 boolean, some nulls), an object prediction, two explanations,
   an ISO-8601 timestamp, about 600 bytes of JSON each, keyed by account id. Event times
   advance steadily over ``--windows`` one-minute windows (with +/-2 s of jitter), and
   record ``i`` goes to partition ``i % partitions``, so that every partition's event
   time increases as in a real keyed stream.
3. Up to four consumers then read the whole topic, each in a FRESH subprocess (its own
   consumer group, its own memory and CPU accounting), ``--repeat`` times, in turn:

   * ``bare``: a kafka-python ``KafkaConsumer`` in a group that polls (``max_poll_records``
     2000) and ``orjson``-decodes every value -- the floor any Python consumer on
     kafka-python pays;
   * ``driftline``: the real :class:`monitor.streaming.ingest.Ingestor` (config in a temporary YAML
     file, SQLite database in a temporary directory, ``checkpoint_interval_s`` 5 s, the
     model's reference profile built from the same generator and stored first), run as
     the service runs it: ``Ingestor.run`` on its own thread, stopped once every record
     is aggregated, which writes the final checkpoint and closes the clients;
   * ``bare-confluent``: a confluent-kafka (librdkafka) ``Consumer`` in a group that
     ``consume``s batches of ``max_poll_records`` and ``orjson``-decodes every value;
   * ``driftline-confluent``: the ``driftline`` run with ``consumer.backend: confluent``.

   Timing starts after the first non-empty poll, so the group join (about 1 s with
   ``session_timeout_ms=2000``) is excluded; the records seen by then are excluded from
   the count too. It ends when the last record is decoded (bare) or when ``run`` has
   returned after the final checkpoint (driftline). CPU seconds are the process's user +
   system time over the same interval (every thread: kafka-python's heartbeat thread and
   librdkafka's fetch threads included); peak RSS is the process's ``VmHWM`` (imports, the
   reference profile and fetch buffers included). The time and runs of the garbage
   collector are reported too.

4. Each driftline run is verified: the ``rows`` of every stored partial sketch add up to
   the number of records produced, and no record was late or invalid.

A table is printed and ``benchmarks/results/ingest.json`` written (``--output``). The
issue's numbers: ``driftline / bare`` of the median rates (target >= 0.6) and
``driftline-confluent``'s median rate (target >= 100,000 records/s per process).
Absolute numbers depend on the machine and on what else runs on it; the ratios much
less, because each pair reads the same topic from the same broker in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: The monitored model's name in every record.
MODEL = "credit-risk"
#: Event time of the first record: 2026-11-22T09:00:00Z, aligned to one-minute windows.
T0 = 1_795_338_000.0
WINDOW_S = 60.0
#: Seconds of event-time jitter either side of a record's nominal time.
JITTER_S = 2.0
#: Allowed lateness of the benchmark model: far more than the jitter, so no record is late.
ALLOWED_LATENESS = "30s"
NUMERIC = (
    "age",
    "income",
    "loan_amount",
    "term_months",
    "credit_score",
    "utilization",
    "debt_to_income",
    "tenure_months",
    "monthly_spend",
    "balance",
    "days_since_last",
    "txn_count_30d",
    "avg_txn_amount",
)
#: Small integer counts: the reference profile infers them (and term_months) as categorical.
COUNTS = ("num_accounts", "delinquencies")
CATEGORICAL = ("region", "channel", "product", "employment")
BOOLEAN = ("has_card",)
FEATURES = (*NUMERIC, *COUNTS, *CATEGORICAL, *BOOLEAN)
REGIONS = ["EU", "US", "APAC", "LATAM", "MEA"]
CHANNELS = ["web", "app", "branch", "partner"]
PRODUCTS = ["card", "loan", "mortgage", "overdraft", "bnpl", "auto"]
EMPLOYMENT = ["employed", "self-employed", "student", "retired", "unemployed"]
#: A consumer that makes no progress for this long fails (instead of waiting for --timeout).
STALL_S = 180
#: How often the driftline child's watching thread reads the consumed offsets.
WATCH_S = 0.02
#: Records generated per random-generator seed (a chunk is reproducible on its own).
CHUNK = 10_000
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "ingest.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- the workload -------------------------------------------------------------------------


def feature_columns(rng: np.random.Generator, rows: int) -> dict[str, Any]:
    """Return ``rows`` values of every feature and of the prediction score, as numpy arrays."""
    import numpy as np

    age = rng.integers(18, 90, rows)
    income = np.round(rng.lognormal(10.8, 0.5, rows), 2)
    utilization = np.round(rng.beta(2.0, 5.0, rows), 4)
    delinquencies = rng.poisson(0.3, rows)
    logit = -1.0 + 3.0 * utilization + 0.5 * delinquencies - (age - 50) / 40.0
    score = np.round(1.0 / (1.0 + np.exp(-(logit + rng.normal(0.0, 0.5, rows)))), 4)
    employment = rng.choice(np.array(EMPLOYMENT, dtype=object), rows, p=[0.6, 0.15, 0.1, 0.1, 0.05])
    employment[rng.random(rows) < 0.02] = None
    days_since_last = rng.integers(0, 365, rows).astype(np.float64)
    days_since_last[rng.random(rows) < 0.01] = np.nan
    return {
        "age": age,
        "income": income,
        "loan_amount": np.round(rng.lognormal(9.0, 1.0, rows), 2),
        "term_months": rng.choice([12, 24, 36, 48, 60, 72, 84, 120, 240, 360], rows),
        "credit_score": rng.normal(680.0, 60.0, rows).round(0),
        "utilization": utilization,
        "debt_to_income": np.round(rng.gamma(2.0, 0.12, rows), 4),
        "tenure_months": rng.gamma(3.0, 14.0, rows).round(1),
        "monthly_spend": np.round(rng.lognormal(7.0, 0.8, rows), 2),
        "balance": np.round(rng.normal(2500.0, 1800.0, rows), 2),
        "days_since_last": days_since_last,
        "txn_count_30d": rng.poisson(25.0, rows),
        "avg_txn_amount": np.round(rng.lognormal(3.5, 0.9, rows), 2),
        "num_accounts": rng.integers(1, 9, rows),
        "delinquencies": delinquencies,
        "region": rng.choice(np.array(REGIONS, dtype=object), rows, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
        "channel": rng.choice(np.array(CHANNELS, dtype=object), rows, p=[0.5, 0.3, 0.15, 0.05]),
        "product": rng.choice(np.array(PRODUCTS, dtype=object), rows),
        "employment": employment,
        "has_card": rng.random(rows) < 0.7,
        "score": score,
    }


def reference_frame(rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Return the model's reference (training) data: the same distributions as the stream."""
    import numpy as np
    import pandas as pd

    columns = feature_columns(np.random.default_rng([seed, 99_999]), rows)
    frame = pd.DataFrame({name: columns[name] for name in FEATURES})
    frame["prediction"] = columns["score"]
    return frame


def _python_values(array: Any) -> list[Any]:
    """``array.tolist()`` with NaN turned into ``None`` (JSON null: a missing value)."""
    import numpy as np

    values: list[Any] = array.tolist()
    if array.dtype.kind == "f" and np.isnan(array).any():
        return [None if v != v else v for v in values]
    return values


def make_chunk(
    seed: int, partition: int, chunk: int, indices: range, total: int, windows: int
) -> list[tuple[bytes, bytes]]:
    """Return ``(key, value)`` of the records with global numbers ``indices`` (one partition).

    The content depends only on ``(seed, partition, chunk)``, so any process produces
    the same records. Record ``i``'s nominal event time is ``T0 + i / total`` of the
    ``windows`` minutes, plus up to :data:`JITTER_S` of jitter either way.
    """
    import numpy as np

    rng = np.random.default_rng([seed, partition, chunk])
    rows = len(indices)
    columns = feature_columns(rng, rows)
    nominal = np.asarray(indices, dtype=np.float64) * (windows * WINDOW_S / total)
    times = T0 + np.maximum(nominal + rng.uniform(-JITTER_S, JITTER_S, rows), 0.0)
    stamps = np.datetime_as_string((times * 1000).astype("datetime64[ms]"), unit="ms")
    ids = rng.bytes(16 * rows).hex()
    accounts = rng.integers(0, 5_000_000, rows).tolist()
    score = columns["score"].tolist()
    explain_age = np.round(rng.normal(0.0, 0.2, rows), 4).tolist()
    explain_income = np.round(rng.normal(0.0, 0.3, rows), 4).tolist()
    feature_rows = zip(*(_python_values(columns[name]) for name in FEATURES), strict=True)
    out = []
    for j, values in enumerate(feature_rows):
        h = ids[32 * j : 32 * j + 32]
        doc = {
            "model": MODEL,
            "model_version": "7",
            "request_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
            "timestamp": f"{stamps[j]}Z",
            "features": dict(zip(FEATURES, values, strict=True)),
            "prediction": {
                "label": "reject" if score[j] >= 0.5 else "approve",
                "score": score[j],
            },
            "explanations": {"age": explain_age[j], "income": explain_income[j]},
        }
        out.append((f"acct-{accounts[j]:07d}".encode(), orjson.dumps(doc)))
    return out


def partition_indices(partition: int, partitions: int, total: int) -> range:
    """Global record numbers that go to ``partition`` (round robin)."""
    return range(partition, total, partitions)


def chunks_of(partition: int, partitions: int, total: int) -> Iterator[tuple[int, range]]:
    """``(chunk_number, indices)`` of ``partition``'s records, :data:`CHUNK` at a time."""
    indices = partition_indices(partition, partitions, total)
    for number, start in enumerate(range(0, len(indices), CHUNK)):
        yield number, indices[start : start + CHUNK]


# --- process helpers ----------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak RSS) of a process, in kB, from ``/proc``."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (context for noisy numbers)."""
    return [round(v, 2) for v in os.getloadavg()]


def has_crc32c() -> bool:
    """Return whether the ``crc32c`` package is importable.

    Without it kafka-python checks every record batch's CRC in pure Python and
    consumes about 8 times slower (see DESIGN.md).
    """
    try:
        import crc32c  # noqa: F401
    except ImportError:
        return False
    return True


def run_child(args: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python -m benchmarks.ingest <args>`` in a fresh process; return its last JSON line."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.ingest", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"child {args[:2]} failed with status {completed.returncode}:\n{completed.stderr}"
        )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {args[:2]} printed no result:\n{completed.stderr}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


@dataclass
class Child:
    """A child process started by :func:`start_children`; its stderr goes to a file."""

    process: subprocess.Popen[str]
    stderr: Any  # a temporary file: a pipe nobody reads could fill up and block the child


def start_children(role: str, specs: list[dict[str, Any]]) -> list[Child]:
    """Start one ``--role role`` child per spec (without waiting)."""
    children = []
    for spec in specs:
        stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 -- closed by stop_children
        process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.ingest", "--role", role, "--spec", json.dumps(spec)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        children.append(Child(process, stderr))
    return children


def stop_children(children: list[Child]) -> None:
    """Kill the children still running and close their stderr files."""
    for child in children:
        if child.process.poll() is None:
            child.process.kill()
            child.process.wait()
        child.stderr.close()


def wait_children(children: list[Child], timeout: float) -> list[dict[str, Any]]:
    """Wait for children started by :func:`start_children`; return their JSON results."""
    results = []
    deadline = time.monotonic() + timeout
    try:
        for child in children:
            stdout, _ = child.process.communicate(timeout=max(deadline - time.monotonic(), 1.0))
            if child.process.returncode != 0:
                child.stderr.seek(0)
                raise RuntimeError(f"a child failed:\n{child.stderr.read()}")
            results.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        stop_children(children)
    return results


# --- broker, topic, config ----------------------------------------------------------------


@contextmanager
def broker() -> Iterator[Any]:
    """A Tansu broker on a free port for the duration of the block; always stopped."""
    from tests.servers import start_broker

    server = start_broker()
    try:
        yield server
    finally:
        server.stop()


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create ``{name: partitions}`` topics (unknown topics would be auto-created with 1)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()]
        )
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    partitions: int,
    total: int,
    windows: int,
    *,
    producers: int,
    seed: int,
    timeout: float = 3600.0,
) -> dict[str, Any]:
    """Produce the workload with ``producers`` processes (each owns some partitions).

    Returns the records and bytes produced and the wall time.
    """
    start = time.perf_counter()
    specs = [
        {
            "bootstrap": bootstrap,
            "topic": topic,
            "partitions": partitions,
            "own": list(range(k, partitions, producers)),
            "total": total,
            "windows": windows,
            "seed": seed,
        }
        for k in range(min(producers, partitions))
    ]
    results = wait_children(start_children("produce", specs), timeout)
    seconds = time.perf_counter() - start
    records = sum(r["records"] for r in results)
    value_bytes = sum(r["bytes"] for r in results)
    return {
        "records": records,
        "value_bytes": value_bytes,
        "mean_value_bytes": round(value_bytes / max(records, 1), 1),
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds),
    }


def producer_role(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: produce the records of the partitions in ``spec["own"]``, interleaved."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=spec["bootstrap"],
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        enable_idempotence=False,
    )
    topic, partitions, total = spec["topic"], spec["partitions"], spec["total"]
    records = value_bytes = 0
    try:
        # One chunk of each owned partition in turn, so all partitions advance together.
        streams = {p: chunks_of(p, partitions, total) for p in spec["own"]}
        while streams:
            for p, stream in list(streams.items()):
                step = next(stream, None)
                if step is None:
                    del streams[p]
                    continue
                number, indices = step
                chunk = make_chunk(spec["seed"], p, number, indices, total, spec["windows"])
                for key, value in chunk:
                    producer.send(topic, key=key, value=value, partition=p)
                    value_bytes += len(value)
                records += len(chunk)
        producer.flush()
    finally:
        producer.close()
    return {"records": records, "bytes": value_bytes}


CONFIG = """\
broker:
  bootstrap_servers: ["{bootstrap}"]
topics:
  predictions: {topic}
  labels: {topic}-labels
  dead_letter: {topic}-dead
consumer:
  group_id: {group}
  session_timeout_ms: 2000
  heartbeat_interval_ms: 500
  max_poll_records: {max_poll_records}
  checkpoint_interval_s: {checkpoint_interval}s
  checkpoint_records: {checkpoint_records}
  backend: {backend}
database:
  url: sqlite:///{db}
models:
  - name: {model}
    prediction: {{field: score}}
    window: {{size: 1m, allowed_lateness: {lateness}, min_records: 50}}
"""


def write_config(directory: Path, bootstrap: str, topic: str, group: str, **options: Any) -> Path:
    """Write the driftline config of one run to ``directory/driftline.yaml``; return its path."""
    path = directory / "driftline.yaml"
    values = {
        "max_poll_records": 2000,
        "checkpoint_interval": 5,
        "checkpoint_records": 50_000,
        "backend": "kafka-python",
        **options,
    }
    path.write_text(
        CONFIG.format(
            bootstrap=bootstrap,
            topic=topic,
            group=group,
            db=directory / "driftline.db",
            model=MODEL,
            lateness=ALLOWED_LATENESS,
            **values,
        )
    )
    return path


def store_reference(config_path: Path, seed: int) -> None:
    """Build the model's reference profile from :func:`reference_frame` and store it."""
    from monitor.analyses.reference import build_profile
    from monitor.config.service import ServiceConfig
    from monitor.store import Store

    config = ServiceConfig.load(config_path)
    store = Store.connect(config.database_url())
    try:
        profile = build_profile(config.model(MODEL), reference_frame(seed=seed))
        store.save_profile(MODEL, profile.to_bytes())
    finally:
        store.close()


# --- the consumers (each runs in its own process) -------------------------------------------


@dataclass
class Timer:
    """Wall and CPU time from the first non-empty poll on, and the records counted since."""

    records: int = 0
    first_batch: int = 0
    wall0: float = 0.0
    cpu0: float = 0.0
    rss0_kb: int = 0
    started: bool = False
    gc: dict[int, list[float]] = field(
        default_factory=lambda: {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    )
    _gc_started: float = 0.0

    def start(self, first_batch: int) -> None:
        """Start the clocks, after the first non-empty poll (its records are not counted)."""
        gc.callbacks.append(self._on_gc)
        self.started = True
        self.first_batch = first_batch
        self.rss0_kb = proc_status()["VmRSS"]
        self.cpu0 = cpu_seconds()
        self.wall0 = time.perf_counter()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        """Count the garbage collector's runs and CPU time per generation (a ``gc`` callback)."""
        if phase == "start":
            self._gc_started = time.process_time()
        else:
            tally = self.gc[info["generation"]]
            tally[0] += 1
            tally[1] += time.process_time() - self._gc_started

    def result(self, role: str, total: int) -> dict[str, Any]:
        """The measurement as a JSON-ready dict (rates over the timed records only)."""
        wall = time.perf_counter() - self.wall0
        cpu = cpu_seconds() - self.cpu0
        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        status = proc_status()
        timed = total - self.first_batch
        return {
            "role": role,
            "records": total,
            "timed_records": timed,
            "seconds": round(wall, 3),
            "records_per_s": round(timed / wall),
            "cpu_seconds": round(cpu, 3),
            "records_per_cpu_s": round(timed / cpu) if cpu > 0 else None,
            "rss_at_start_mb": round(self.rss0_kb / 1024, 1),
            "peak_rss_mb": round(status["VmHWM"] / 1024, 1),
            "gc_runs": {str(g): int(n) for g, (n, _) in self.gc.items()},
            "gc_cpu_seconds": round(sum(t for _, t in self.gc.values()), 3),
        }


def bare_role(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: a bare kafka-python group consumer that polls and orjson-decodes ``total`` values."""
    from kafka import KafkaConsumer

    total = spec["total"]
    consumer = KafkaConsumer(
        spec["topic"],
        bootstrap_servers=spec["bootstrap"],
        group_id=spec["group"],
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        max_poll_records=spec["max_poll_records"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    timer = Timer()
    seen = 0
    loads = orjson.loads
    deadline = time.monotonic() + spec["timeout"]
    try:
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare consumer saw {seen} of {total} records")
            batch = consumer.poll(timeout_ms=500, max_records=spec["max_poll_records"])
            count = 0
            for messages in batch.values():
                for message in messages:
                    loads(message.value)
                count += len(messages)
            seen += count
            if count and not timer.started:
                timer.start(count)
        return timer.result("bare", seen)
    finally:
        consumer.close(autocommit=False)


def bare_confluent_role(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: a bare confluent-kafka group consumer: ``consume`` batches, orjson-decode values."""
    from confluent_kafka import Consumer

    total = spec["total"]
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": spec["group"],
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([spec["topic"]])
    timer = Timer()
    seen = 0
    loads = orjson.loads
    batch_size = spec["max_poll_records"]
    deadline = time.monotonic() + spec["timeout"]
    try:
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare confluent consumer saw {seen} of {total} records")
            count = 0
            for message in consumer.consume(batch_size, 0.5):
                if message.error() is None:
                    loads(message.value())
                    count += 1
            seen += count
            if count and not timer.started:
                timer.start(count)
        return timer.result("bare-confluent", seen)
    finally:
        consumer.close()


def driftline_role(spec: dict[str, Any]) -> dict[str, Any]:
    """Child: the real Ingestor, run as the service runs it, until every record is stored.

    ``Ingestor.run`` polls on its own thread (as in :class:`monitor.service.run.Service`);
    this thread watches the partitions' offsets every :data:`WATCH_S` seconds, starts
    the clocks when the first records are in and sets the stop event once all
    ``total`` records are aggregated; ``run`` then writes the final checkpoint and
    closes the clients, and the clocks stop. With ``spec["sample_every"]``, a JSON line
    with the process's RSS is printed (and flushed) every that many records.
    """
    import threading

    from prometheus_client import CollectorRegistry

    from monitor.config.service import ServiceConfig
    from monitor.metrics import Metrics
    from monitor.service.run import load_runtimes
    from monitor.store import Store
    from monitor.streaming.ingest import Ingestor

    total = spec["total"]
    config = ServiceConfig.load(spec["config"])
    store = Store.connect(config.database_url())
    runtimes = load_runtimes(config, store)
    metrics = Metrics(CollectorRegistry())
    ingestor = Ingestor(config, store, runtimes, metrics)
    stop = threading.Event()
    failures: list[BaseException] = []
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()  # of the ingest thread only

    def consume() -> None:
        try:
            if profiler is None:
                ingestor.run(stop)
            else:
                profiler.runcall(ingestor.run, stop)
        except BaseException as error:  # reported by the watching thread
            failures.append(error)

    thread = threading.Thread(target=consume, name="driftline-ingest")
    timer = Timer()
    sample_every = spec.get("sample_every") or 0
    next_sample = sample_every
    seen = 0
    deadline = time.monotonic() + spec["timeout"]
    progressed = time.monotonic()
    thread.start()
    try:
        while seen < total:
            time.sleep(WATCH_S)
            if failures or not thread.is_alive():
                raise RuntimeError(f"the ingest thread stopped after {seen} records") from (
                    failures[0] if failures else None
                )
            now = time.monotonic()
            if now > deadline or now - progressed > STALL_S:
                why = f"no progress for {STALL_S} s" if now <= deadline else "timeout"
                raise TimeoutError(f"driftline consumed {seen} of {total} records ({why})")
            now_seen = _consumed(ingestor)
            if now_seen != seen:
                seen, progressed = now_seen, now
            if seen and not timer.started:
                timer.start(seen)
            if sample_every and seen >= next_sample:
                while next_sample <= seen:
                    next_sample += sample_every
                print(json.dumps(_sample(ingestor, seen, timer)), flush=True)
    finally:
        stop.set()
        thread.join()  # run() returns after the final checkpoint and closing the clients
        if profiler is not None:
            profiler.dump_stats(spec["profile"])
    try:
        if failures:
            raise RuntimeError("the final checkpoint failed") from failures[0]
        result = timer.result(spec.get("role", "driftline"), seen)
        if sample_every:
            print(json.dumps({**_sample(ingestor, seen, timer), "final": True}), flush=True)
        result.update(_verify(store, config, metrics, spec["partitions"], total))
        return result
    finally:
        store.close()


def _consumed(ingestor: Any) -> int:
    """Records aggregated so far: the sum of the partitions' next offsets (read from outside)."""
    for _ in range(10):
        try:
            return sum(s.next_offset or 0 for s in list(ingestor.states.values()))
        except RuntimeError:  # the dict changed size under us (a rebalance): read again
            continue
    return 0


def _sample(ingestor: Any, seen: int, timer: Timer) -> dict[str, Any]:
    """One memory sample of the driftline child."""
    status = proc_status()
    return {
        "sample": True,
        "records": seen,
        "seconds": round(time.perf_counter() - timer.wall0, 2) if timer.started else 0.0,
        "rss_mb": round(status["VmRSS"] / 1024, 1),
        "peak_rss_mb": round(status["VmHWM"] / 1024, 1),
        "partials_in_memory": sum(len(s.partials) for s in list(ingestor.states.values())),
    }


def _verify(store: Any, config: Any, metrics: Any, partitions: int, total: int) -> dict[str, Any]:
    """Check that the stored partials hold exactly ``total`` records; return the counts."""
    topic = config.topics.predictions
    stored_rows = 0
    windows = set()
    for partition in range(partitions):
        for row in store.partials_for_partition(topic, partition):
            stored_rows += row.rows
            windows.add(row.window_start)
    registry = metrics.registry
    counted = registry.get_sample_value("driftline_records_total", {"model": MODEL}) or 0
    late = registry.get_sample_value("driftline_records_late_total", {"model": MODEL}) or 0
    # Not `assert`: the check must also run under `python -O`.
    if stored_rows != total:
        raise AssertionError(f"stored partials cover {stored_rows} records, not {total}")
    if counted != total or late:
        raise AssertionError(f"driftline counted {counted} and {late} late of {total} records")
    return {"stored_partial_rows": stored_rows, "windows": len(windows)}


# --- the benchmark ------------------------------------------------------------------------


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Start the broker, produce, run both consumers ``--repeat`` times; return the results."""
    import secrets

    topic = f"bench-{secrets.token_hex(4)}"
    timeout = args.timeout
    if not has_crc32c():
        print("WARNING: crc32c is not installed: kafka-python will be ~8x slower", flush=True)
    with broker() as server, tempfile.TemporaryDirectory(prefix="driftline-ingest-") as tmp:
        bootstrap = server.bootstrap
        create_topics(bootstrap, {topic: args.partitions, f"{topic}-labels": 1})
        print(
            f"broker {bootstrap} (pid {server.pid}); producing {args.records:,} records "
            f"to {args.partitions} partitions ...",
            flush=True,
        )
        produced = produce(
            bootstrap,
            topic,
            args.partitions,
            args.records,
            args.windows,
            producers=args.producers,
            seed=args.seed,
            timeout=timeout,
        )
        print(
            f"  {produced['records']:,} records, {produced['mean_value_bytes']} bytes each, "
            f"in {produced['seconds']} s ({produced['records_per_s']:,}/s)",
            flush=True,
        )
        runs: list[dict[str, Any]] = []
        for attempt in range(args.repeat):
            for role in args.consumers:
                work = Path(tmp) / f"{role}-{attempt}"
                work.mkdir()
                group = f"{role}-{attempt}-{secrets.token_hex(3)}"
                spec: dict[str, Any] = {
                    "bootstrap": bootstrap,
                    "topic": topic,
                    "group": group,
                    "total": args.records,
                    "partitions": args.partitions,
                    "max_poll_records": args.max_poll_records,
                    "timeout": timeout,
                }
                if role.startswith("driftline"):
                    spec["role"] = role
                    spec["config"] = str(
                        write_config(
                            work,
                            bootstrap,
                            topic,
                            group,
                            max_poll_records=args.max_poll_records,
                            backend=BACKENDS[role],
                        )
                    )
                    store_reference(Path(spec["config"]), args.seed)
                    if args.profile is not None and attempt == 0:
                        path = args.profile.resolve()
                        if role != "driftline":  # one file per driftline consumer
                            path = path.with_name(f"{path.stem}-{role}{path.suffix}")
                        spec["profile"] = str(path)
                load = load_average()
                child_role = "driftline" if role.startswith("driftline") else role
                result = run_child(["--role", child_role, "--spec", json.dumps(spec)], timeout)
                result.update(attempt=attempt, load_before=load, load_after=load_average())
                runs.append(result)
                print(
                    f"  {role:19} run {attempt + 1}: {result['records_per_s']:>7,} records/s, "
                    f"{result['cpu_seconds']:6.2f} CPU s, peak RSS {result['peak_rss_mb']} MB "
                    f"(load {load[0]})",
                    flush=True,
                )
    return {
        "command": "python -m benchmarks.ingest " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "crc32c": has_crc32c(),
        },
        "workload": {
            "records": args.records,
            "partitions": args.partitions,
            "windows": args.windows,
            "features": len(FEATURES),
            "seed": args.seed,
            "max_poll_records": args.max_poll_records,
        },
        "versions": versions(),
        "produce": produced,
        "runs": runs,
        "summary": summarise(runs),
    }


def versions() -> dict[str, str | None]:
    """Versions of the Kafka clients measured (None: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for package in ("kafka-python", "confluent-kafka", "orjson"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    return out


#: Each driftline consumer and the bare consumer of the same client library it is compared with.
PAIRS = {"driftline": "bare", "driftline-confluent": "bare-confluent"}
#: ``consumer.backend`` of each driftline consumer.
BACKENDS = {"driftline": "kafka-python", "driftline-confluent": "confluent"}
#: Issue 12's targets: driftline on kafka-python >= 0.6x bare kafka-python; driftline on
#: confluent-kafka >= 100,000 records/s per process.
RATIO_TARGET = 0.6
CONFLUENT_TARGET = 100_000
CONSUMERS = ("bare", "driftline", "bare-confluent", "driftline-confluent")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per consumer, and each driftline / bare ratio of the median rates."""
    summary: dict[str, Any] = {}
    for role in CONSUMERS:
        mine = [r for r in runs if r["role"] == role]
        if not mine:
            continue
        summary[role] = {
            key: statistics.median(r[key] for r in mine)
            for key in ("records_per_s", "cpu_seconds", "records_per_cpu_s", "peak_rss_mb")
        }
    ratios = {}
    for ours_role, bare_role_name in PAIRS.items():
        if ours_role in summary and bare_role_name in summary:
            ours, bare = summary[ours_role], summary[bare_role_name]
            ratios[ours_role] = {
                "ratio": round(ours["records_per_s"] / bare["records_per_s"], 3),
                "cpu_ratio": round(ours["records_per_cpu_s"] / bare["records_per_cpu_s"], 3),
            }
    summary["ratios"] = ratios
    if "driftline" in ratios:  # kept from the first version of this report
        summary["ratio"] = ratios["driftline"]["ratio"]
        summary["cpu_ratio"] = ratios["driftline"]["cpu_ratio"]
        summary["target_met"] = summary["ratio"] >= RATIO_TARGET
    if "driftline-confluent" in summary:
        rate = summary["driftline-confluent"]["records_per_s"]
        summary["confluent_target_met"] = rate >= CONFLUENT_TARGET
    return summary


def print_table(report: dict[str, Any]) -> None:
    """Print the medians and the ratios."""
    summary = report["summary"]
    work = report["workload"]
    roles = [role for role in CONSUMERS if role in summary]
    print()
    print(
        f"{work['records']:,} records x {report['produce']['mean_value_bytes']} bytes, "
        f"{work['partitions']} partitions, {work['windows']} windows; "
        f"median of {len(report['runs']) // max(len(roles), 1)} run(s)"
    )
    print(
        f"{'consumer':20} {'records/s':>10} {'CPU s':>8} {'records/CPU s':>14} {'peak RSS MB':>12}"
    )
    for role in roles:
        row = summary[role]
        print(
            f"{role:20} {row['records_per_s']:>10,.0f} {row['cpu_seconds']:>8.2f} "
            f"{row['records_per_cpu_s']:>14,.0f} {row['peak_rss_mb']:>12.1f}"
        )
    for ours_role, ratio in summary["ratios"].items():
        line = (
            f"{ours_role} / {PAIRS[ours_role]}: {ratio['ratio']:.2f} wall, "
            f"{ratio['cpu_ratio']:.2f} per CPU second"
        )
        if ours_role == "driftline":
            verdict = "met" if summary["target_met"] else "NOT met"
            line += f" (target >= {RATIO_TARGET:.2f}: {verdict})"
        print(line)
    if "confluent_target_met" in summary:
        verdict = "met" if summary["confluent_target_met"] else "NOT met"
        rate = summary["driftline-confluent"]["records_per_s"]
        print(
            f"driftline-confluent: {rate:,.0f} records/s "
            f"(target >= {CONFLUENT_TARGET:,} per process: {verdict})"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description=textwrap.dedent(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--records", type=int, default=500_000, help="records to produce")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions")
    parser.add_argument("--windows", type=int, default=30, help="one-minute windows spanned")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each consumer")
    parser.add_argument("--producers", type=int, default=2, help="producer processes")
    parser.add_argument("--max-poll-records", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per child, in seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    parser.add_argument(
        "--profile",
        type=Path,
        help="write cProfile stats of the first driftline run here (slows that run down)",
    )
    parser.add_argument(
        "--consumers",
        nargs="+",
        choices=CONSUMERS,
        default=list(CONSUMERS),
        help="consumers to run, in this order, each --repeat times (default: all four)",
    )
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


ROLES = {
    "bare": bare_role,
    "bare-confluent": bare_confluent_role,
    "driftline": driftline_role,
    "produce": producer_role,
}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, or one child role (internal)."""
    args = parse_args(argv)
    if args.role is not None:
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        result = ROLES[args.role](json.loads(args.spec))
        print(json.dumps(result), flush=True)
        return 0
    report = run_benchmark(args)
    print_table(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

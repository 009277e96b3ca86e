"""Scale benchmark: a fleet of models through 1, 2 and 3 ``driftline run`` processes.

Run from the repository root, in driftline's virtualenv (not part of ``make test``)::

    .venv/bin/python -m benchmarks.scale                       # 500 x 30 x 12, 1/2/3 processes
    .venv/bin/python -m benchmarks.scale --models 50 --features 10 --partitions 4 \\
        --records 100000 --windows 4                           # a quick run

What happens:

1. Apache Kafka (KRaft, tests/apache_kafka.py) and a private PostgreSQL
   cluster (tests/postgres.py, the suite's settings: fsync off) start.
2. A topic with ``--partitions`` partitions is filled with ``--records``
   records of the fleet of :mod:`benchmarks.fleet` (Zipf-like traffic over
   ``--models`` models, ``--features`` numeric features, ``--windows``
   one-minute windows of event time), by producer processes, before any
   consumer starts: every run reads the same backlog.
3. The models' reference profiles are built once and, for each process count
   in ``--processes``, stored (Store API) in a FRESH database; then that many
   ``driftline run`` processes (one consumer group, one config each for its
   own HTTP port) consume the whole topic and evaluate the windows.
4. While they run, every ``--poll`` seconds the benchmark reads the
   partitions' progress from PostgreSQL (records consumed; the watermark,
   which says when each window became due), the processes' CPU time and RSS
   from /proc, Kafka's and PostgreSQL's CPU time, the connections in
   ``pg_stat_activity`` and ``pg_database_size``; every ``--scrape`` seconds
   it scrapes each process's ``/metrics`` (records counted, checkpoint and
   evaluation counters, and when each model's newest window end appears in
   ``driftline_window_end_timestamp_seconds``).
5. A run ends when every window is evaluated (the last ones close once the
   partitions are idle, ``idle_timeout_s`` 10 s), or at ``--timeout``.

Measured per run (printed as a table, written to ``benchmarks/results/scale.json``):
records/s in total and per process (from each process's ``driftline_records_total``),
CPU seconds per record, checkpoints per second, partial rows and payload bytes
per checkpoint, mean checkpoint seconds and the p50/p99 over scrape intervals,
windows evaluated per second and seconds per window by feature count, window
due -> evaluated (``evaluated_at``) and due -> visible on ``/metrics``
latencies (p50/p99), RSS per process, database growth per hour of event time,
connections. For the 2- and 3-process runs the capacity model
(:mod:`benchmarks.capacity_model`, fitted on the 1-process run) prints its
prediction beside the measurement.

Live-rate mode (``--live-rate R --duration D``, item 5 of issue 12): no
backlog; ``R`` records/s are produced WHILE the processes consume, with event
time = wall time, for ``D`` seconds (``--records`` and ``--windows`` follow
from them). Every 5 s the RSS of each process, the database size and the
partials and results tables' sizes are sampled; the JSON's ``live`` entry
holds them once a minute, the RSS flatness and the plan of the due-windows
query. ``--trace-memory SECONDS`` runs the processes under tracemalloc
(:mod:`benchmarks.traced_run`)::

    nice -n 5 .venv/bin/python -m benchmarks.scale --models 100 --features 10 \
        --partitions 4 --processes 1 --live-rate 2000 --duration 600 \
        --partials-retention 120 --retention-interval 15 --timeout 900

Caveats: the backlog is read as fast as possible, so event time runs much
faster than wall time (10 one-minute windows are consumed in seconds): every
model's window becomes due at nearly the same moment and the evaluators
face bursts of ``models`` windows, harder than live traffic, where they are
spread over a minute. All servers share the machine's cores with the
processes under test.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks import capacity_model
from benchmarks.fleet import (
    ALLOWED_LATENESS_S,
    T0,
    WINDOW_S,
    FleetSpec,
    build_profiles,
    chunks_of,
    make_chunk,
    store_profiles,
    write_config,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO_ROOT / "benchmarks" / "results" / "scale.json"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_WINDOW_END = re.compile(
    r'^driftline_window_end_timestamp_seconds\{model="([^"]+)"\} ([0-9.e+]+)$', re.M
)
_COUNTER = re.compile(r"^(driftline_[a-z_]+_total)(\{[^}]*\})? ([0-9.e+-]+)$", re.M)


# --- processes ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of process ``pid`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """Return the resident memory of process ``pid`` in MB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children_of(pid: int) -> list[int]:
    """Return the pids whose parent is ``pid`` (PostgreSQL's backends and workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == pid:
            found.append(int(entry.name))
    return found


def percentile(values: list[float], q: float) -> float | None:
    """Return the ``q`` quantile (0..1) of ``values`` by nearest rank, None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


# --- producing ------------------------------------------------------------------------------


def _produce(spec: dict[str, Any], bootstrap: str, topic: str, own: list[int]) -> int:
    """Child: produce the records of partitions ``own``; return how many."""
    from kafka import KafkaProducer

    fleet = FleetSpec(**spec)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=20,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        enable_idempotence=False,
        compression_type=None,
    )
    sent = 0
    try:
        streams = {p: chunks_of(fleet, p) for p in own}
        while streams:
            for p, stream in list(streams.items()):
                step = next(stream, None)
                if step is None:
                    del streams[p]
                    continue
                number, indices = step
                for key, value in make_chunk(fleet, partition=p, chunk=number, indices=indices):
                    producer.send(topic, key=key, value=value, partition=p)
                sent += len(indices)
        producer.flush()
    finally:
        producer.close()
    return sent


def _produce_live(
    spec: dict[str, Any], bootstrap: str, topic: str, own: list[int], t0: float
) -> int:
    """Child: produce partitions ``own``'s records at the live rate; return how many.

    Record ``i`` (event time ``t0 + i / rate`` plus jitter) is sent once the
    wall clock passes that time, in batches every 50 ms: event time = wall time.
    """
    from kafka import KafkaProducer

    fleet = FleetSpec(**spec)
    per_record = fleet.windows * WINDOW_S / fleet.records
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, enable_idempotence=False
    )
    sent = 0
    try:
        pending = {p: range(p, fleet.records, fleet.partitions) for p in own}
        chunk = 0
        while pending:
            time.sleep(0.05)
            # Record i is due once i * per_record <= now - t0: every index below ``upto``.
            upto = math.floor((time.time() - t0) / per_record) + 1
            for p, indices in list(pending.items()):
                # indices steps by the partition count: those below ``upto`` are due.
                first = indices[0]
                count = max(0, min(len(indices), math.ceil((upto - first) / fleet.partitions)))
                if count == 0:
                    continue
                chunk += 1
                batch = indices[:count]
                for key, value in make_chunk(fleet, partition=p, chunk=chunk, indices=batch, t0=t0):
                    producer.send(topic, key=key, value=value, partition=p)
                sent += count
                rest = indices[count:]
                if len(rest):
                    pending[p] = rest
                else:
                    del pending[p]
        producer.flush()
    finally:
        producer.close()
    return sent


def produce(fleet: FleetSpec, bootstrap: str, topic: str, producers: int) -> dict[str, float]:
    """Fill ``topic`` with the fleet's records using ``producers`` processes; return the timing."""
    began = time.perf_counter()
    spec = asdict(fleet)
    owners = [list(range(k, fleet.partitions, producers)) for k in range(producers)]
    with ProcessPoolExecutor(producers, mp_context=get_context("spawn")) as pool:
        sent = sum(pool.map(_produce, [spec] * producers, [bootstrap] * producers,
                            [topic] * producers, owners))  # fmt: skip
    seconds = time.perf_counter() - began
    return {"records": sent, "seconds": round(seconds, 1), "records_per_s": round(sent / seconds)}


def create_topics(bootstrap: str, topic: str, partitions: int) -> None:
    """Create the predictions topic and the labels and dead-letter topics."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(topic, num_partitions=partitions, replication_factor=1),
                NewTopic(f"{topic}-labels", num_partitions=1, replication_factor=1),
                NewTopic(f"{topic}-dead", num_partitions=1, replication_factor=1),
            ]
        )
    finally:
        admin.close()


# --- one run --------------------------------------------------------------------------------


@dataclass
class Member:
    """One ``driftline run`` process of a run and what was sampled of it."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    rss: list[float] = field(default_factory=list)
    cpu0: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)
    # (wall time, checkpoints, checkpoint seconds) at each scrape.
    checkpoints: list[tuple[float, float, float]] = field(default_factory=list)
    scrape_seconds: list[float] = field(default_factory=list)
    scrape_bytes: int = 0


def scrape(member: Member, seen: dict[tuple[str, float], float]) -> None:
    """Scrape ``/metrics`` of ``member``: counters, and first sight of each window end."""
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{member.port}/metrics", timeout=30) as r:
            text = r.read().decode()
    except OSError:
        return
    now = time.time()
    member.scrape_seconds.append(time.perf_counter() - began)
    member.scrape_bytes = len(text)
    for model, end in _WINDOW_END.findall(text):
        seen.setdefault((model, float(end)), now)
    counters: dict[str, float] = {}
    for name, labels, value in _COUNTER.findall(text):
        key = name + (labels or "")
        counters[key] = counters.get(key, 0.0) + float(value)
        counters[name] = counters.get(name, 0.0) + float(value) if labels else counters[key]
    member.counters = counters
    member.checkpoints.append(
        (
            now,
            counters.get("driftline_checkpoints_total", 0.0),
            counters.get("driftline_checkpoint_seconds_total", 0.0),
        )
    )


def run_processes(
    count: int,
    fleet: FleetSpec,
    profiles: dict[str, bytes],
    *,
    bootstrap: str,
    topic: str,
    admin_url: str,
    postmaster: int,
    broker_pid: int,
    work: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Run ``count`` driftline processes over the whole topic; return the measurements."""
    import psycopg

    from tests.postgres import create_database, drop_database, sqlalchemy_url
    from tests.servers import free_port, unique_name

    database = create_database(admin_url, prefix="scale")
    url = sqlalchemy_url(admin_url, database)
    db_url = admin_url.rsplit("/", 1)[0] + f"/{database}"
    group = unique_name("scale")
    directory = work / f"run{count}"
    directory.mkdir()
    configs = [
        write_config(
            directory / f"driftline{k}.yaml",
            fleet,
            bootstrap=bootstrap,
            topic=topic,
            group=group,
            database=url,
            port=free_port(),
            per_feature_metrics=not args.no_per_feature,
            partials_retention_s=args.partials_retention,
            retention_interval=args.retention_interval,
        )
        for k in range(count)
    ]
    store_profiles(url, profiles)
    conn = psycopg.connect(db_url, autocommit=True)
    size0 = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    members = []

    def servers_cpu_now() -> float:
        return cpu_seconds(broker_pid) + sum(
            cpu_seconds(p) for p in [postmaster, *children_of(postmaster)]
        )

    servers_cpu0 = servers_cpu_now()
    started = time.time()
    for k, config in enumerate(configs):
        log = directory / f"driftline{k}.log"
        with log.open("wb") as out:
            command = ["-m", "monitor.cli", "run", "--config", str(config)]
            if args.profile and count == 1:
                profile = str(args.output.with_suffix(f".{count}proc.prof"))
                command = ["-m", "benchmarks.profiled_run", profile, *command[2:]]
            elif args.trace_memory:
                traced = str(args.output.with_suffix(f".{count}proc{k}.tracemalloc.txt"))
                interval = str(args.trace_memory)
                command = ["-m", "benchmarks.traced_run", traced, interval, *command[2:]]
            process = subprocess.Popen(
                [sys.executable, *command],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        port = int(re.search(r"port: (\d+)", config.read_text()).group(1))  # type: ignore[union-attr]
        members.append(Member(process=process, port=port, log=log, cpu0=cpu_seconds(process.pid)))
    total = fleet.records
    due: dict[float, float] = {}  # window end -> wall time the watermark passed it
    seen: dict[tuple[str, float], float] = {}
    connections: list[int] = []
    sizes: list[tuple[float, int]] = []  # (seconds since start, pg_database_size)
    first_progress = consumed_at = None
    consumed_first = 0
    # CPU (driftline processes, servers) when the timed interval starts and ends: the ingest
    # rate's own CPU cost, without the evaluation of a backlog's windows that follows it.
    timed_cpu: list[tuple[float, float]] = []
    last_scrape = 0.0
    deadline = time.monotonic() + args.timeout
    windows_total = None
    live = args.live_rate is not None
    # Event time of the first record: the fleet's fixed T0, or (live) now, when production starts.
    t0 = T0
    producing = None
    pool = None
    # Live: every 5 s, (seconds, RSS MB per process, database bytes, bytes per table, partial rows).
    series: list[dict[str, Any]] = []
    if live:
        t0 = time.time() + 2.0
        pool = ProcessPoolExecutor(args.producers, mp_context=get_context("spawn"))
        owners = [list(range(k, fleet.partitions, args.producers)) for k in range(args.producers)]
        producing = [
            pool.submit(_produce_live, asdict(fleet), bootstrap, topic, own, t0) for own in owners
        ]
    try:
        while time.monotonic() < deadline:
            time.sleep(args.poll)
            for m in members:
                if m.process.poll() is not None:
                    raise RuntimeError(
                        f"driftline exited ({m.process.returncode}):\n"
                        + m.log.read_text(errors="replace")[-4000:]
                    )
                m.rss.append(rss_mb(m.process.pid))
            rows = conn.execute(
                "SELECT next_offset, max_event_time FROM partition_progress "
                "WHERE group_id = %s AND topic = %s",
                (group, topic),
            ).fetchall()
            now = time.time()
            consumed = sum(r[0] for r in rows)
            if consumed and first_progress is None:
                # The records of the first checkpoint are not timed: their start is unknown.
                first_progress, consumed_first = now, consumed
                timed_cpu.append(
                    (sum(cpu_seconds(m.process.pid) for m in members), servers_cpu_now())
                )
            times = [r[1] for r in rows]
            if len(rows) == fleet.partitions and all(t is not None for t in times):
                mark = min(times) - ALLOWED_LATENESS_S
                end = math.floor(t0 / WINDOW_S) * WINDOW_S + WINDOW_S
                while end <= mark:
                    due.setdefault(end, now)
                    end += WINDOW_S
            connections.append(
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                ).fetchone()[0]
                - 1  # this connection
            )
            if not sizes or now - started - sizes[-1][0] >= 5:
                size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
                sizes.append((round(now - started, 1), size))
                if live:
                    series.append(sample_live(conn, members, now - started, size))
            if now - last_scrape >= args.scrape:
                last_scrape = now
                for m in members:
                    scrape(m, seen)
            if consumed >= total and consumed_at is None:
                consumed_at = now
                timed_cpu.append(
                    (sum(cpu_seconds(m.process.pid) for m in members), servers_cpu_now())
                )
                # The newest window never closes without newer traffic (by design): wait for
                # the windows that end before the newest event time, less the lateness.
                last_end = max(times) - ALLOWED_LATENESS_S
                windows_total = conn.execute(
                    "SELECT count(*) FROM (SELECT DISTINCT model, window_start FROM partials "
                    "WHERE window_end <= %s) w",
                    (last_end,),
                ).fetchone()[0]
            if consumed_at is not None and live:
                # Retention has deleted evaluated windows' partials: wait for none left undone.
                undone = conn.execute(
                    "SELECT count(*) FROM partials p WHERE window_end <= %s AND NOT EXISTS "
                    "(SELECT 1 FROM window_claims c WHERE c.model = p.model AND "
                    "c.window_start = p.window_start AND c.status = 'done')",
                    (last_end,),
                ).fetchone()[0]
                if undone == 0:
                    break
            elif consumed_at is not None:
                done = conn.execute(
                    "SELECT count(*) FROM window_claims WHERE status = 'done'"
                ).fetchone()[0]
                if done >= windows_total:
                    break
        else:
            print(f"  timeout after {args.timeout} s", flush=True)
        for m in members:
            scrape(m, seen)
        ended = time.time()
        cpu = [cpu_seconds(m.process.pid) - m.cpu0 for m in members]
        servers_cpu = servers_cpu_now() - servers_cpu0
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for m in members:
            if m.process.poll() is None:
                m.process.terminate()
        for m in members:
            try:
                m.process.wait(30)
            except subprocess.TimeoutExpired:
                m.process.kill()
                m.process.wait()
    size1 = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    tables = dict(
        conn.execute(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
        ).fetchall()
    )
    counts = {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("partials", "feature_results", "window_summaries", "window_claims")
    }
    evaluated = conn.execute(
        "SELECT s.model, s.window_start, s.window_end, s.evaluated_at FROM window_summaries s"
    ).fetchall()
    commits = conn.execute(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()[0]
    plan = explain_due_windows(conn) if live else None
    conn.close()
    drop_database(admin_url, database)
    return summarise(
        count,
        fleet,
        members,
        started=started,
        first_progress=first_progress,
        consumed_first=consumed_first,
        consumed_at=consumed_at or ended,
        ended=ended,
        cpu=cpu,
        servers_cpu=servers_cpu,
        timed_cpu=timed_cpu,
        due=due,
        seen=seen,
        evaluated=evaluated,
        connections=connections,
        size_growth=size1 - size0,
        tables=tables,
        counts=counts,
        commits=commits,
        sizes=sizes,
        series=series,
        plan=plan,
        produced=[f.result() for f in producing] if producing else None,
    )


def summarise(count: int, fleet: FleetSpec, members: list[Member], **m: Any) -> dict[str, Any]:
    """Turn one run's samples into its row of the table (and the JSON)."""
    wall = m["consumed_at"] - (m["first_progress"] or m["started"])
    records = fleet.records
    timed = records - m["consumed_first"]
    # Each process's share of the timed records, by its own records_total.
    counted = sum(mem.counters.get("driftline_records_total", 0.0) for mem in members) or 1.0
    per_process = [
        mem.counters.get("driftline_records_total", 0.0) / counted * timed / wall
        if wall > 0
        else 0.0
        for mem in members
    ]
    checkpoints = sum(mem.counters.get("driftline_checkpoints_total", 0.0) for mem in members)
    ck_seconds = sum(mem.counters.get("driftline_checkpoint_seconds_total", 0.0) for mem in members)
    partials = sum(mem.counters.get("driftline_checkpoint_partials_total", 0.0) for mem in members)
    payload = sum(mem.counters.get("driftline_checkpoint_bytes_total", 0.0) for mem in members)
    interval_means = []
    for mem in members:
        for (_, n0, s0), (_, n1, s1) in zip(mem.checkpoints, mem.checkpoints[1:], strict=False):
            if n1 > n0:
                interval_means.append((s1 - s0) / (n1 - n0))
    by_features: dict[str, list[float]] = {}
    for mem in members:
        for key, value in mem.counters.items():
            found = re.match(r'driftline_window_evaluations_total\{features="(\d+)"\}', key)
            if found:
                seconds = mem.counters.get(
                    f'driftline_window_evaluation_seconds_total{{features="{found.group(1)}"}}', 0.0
                )
                totals = by_features.setdefault(found.group(1), [0.0, 0.0])
                totals[0] += value
                totals[1] += seconds
    eval_lag = [
        at - m["due"][end] for _, _, end, at in m["evaluated"] if end in m["due"] and at is not None
    ]
    gauge_lag = [at - m["due"][end] for (_, end), at in m["seen"].items() if end in m["due"]]
    eval_times = sorted(at for *_, at in m["evaluated"] if at is not None)
    eval_span = eval_times[-1] - eval_times[0] if len(eval_times) > 1 else 0.0
    event_hours = fleet.windows * WINDOW_S / 3600
    cpu_total = sum(m["cpu"])
    timed_cost: tuple[float | None, float | None] = (None, None)
    if len(m["timed_cpu"]) == 2 and timed > 0:
        (p0, s0), (p1, s1) = m["timed_cpu"]
        timed_cost = ((p1 - p0) / timed, (s1 - s0) / timed)
    rss_all = [r for mem in members for r in mem.rss if r]
    return {
        "processes": count,
        "wall_s": round(wall, 1),
        "records_per_s": round(timed / wall) if wall > 0 else None,
        "records_per_s_per_process": [round(x) for x in per_process],
        "cpu_s_per_record": cpu_total / records,
        # Over the timed interval only (what the ingest rate costs while it runs).
        "timed_cpu_s_per_record": timed_cost[0],
        "timed_servers_cpu_s_per_record": timed_cost[1],
        "process_cpu_s": [round(c, 1) for c in m["cpu"]],
        "process_cpu_cores": round(cpu_total / (m["ended"] - m["started"]), 2),
        "servers_cpu_s_per_record": m["servers_cpu"] / records,
        "checkpoints": int(checkpoints),
        "checkpoints_per_s": round(checkpoints / wall, 2) if wall > 0 else None,
        "partials_per_checkpoint": round(partials / checkpoints, 1) if checkpoints else None,
        "bytes_per_checkpoint": round(payload / checkpoints) if checkpoints else None,
        "bytes_per_partial": round(payload / partials) if partials else None,
        "checkpoint_mean_s": round(ck_seconds / checkpoints, 4) if checkpoints else None,
        "checkpoint_p50_s": percentile(interval_means, 0.5),
        "checkpoint_p99_s": percentile(interval_means, 0.99),
        "windows_evaluated": len(m["evaluated"]),
        "windows_per_s": round(len(eval_times) / eval_span, 1) if eval_span else None,
        "eval_s_per_window_by_features": {
            f: round(s / n, 4) for f, (n, s) in sorted(by_features.items()) if n
        },
        "due_to_evaluated_p50_s": percentile(eval_lag, 0.5),
        "due_to_evaluated_p99_s": percentile(eval_lag, 0.99),
        "due_to_gauge_p50_s": percentile(gauge_lag, 0.5),
        "due_to_gauge_p99_s": percentile(gauge_lag, 0.99),
        "gauge_samples": len(gauge_lag),
        "rss_mb_max": round(max(rss_all), 1) if rss_all else None,
        "rss_mb_per_process_final": [round(mem.rss[-1], 1) for mem in members if mem.rss],
        "scrape_s_mean": round(statistics.mean(s for mem in members for s in mem.scrape_seconds), 3)
        if any(mem.scrape_seconds for mem in members)
        else None,
        "scrape_bytes": max(mem.scrape_bytes for mem in members),
        "db_growth_bytes": m["size_growth"],
        "db_growth_bytes_per_event_hour": round(m["size_growth"] / event_hours),
        "table_bytes": m["tables"],
        "row_counts": m["counts"],
        "db_commits": m["commits"],
        "connections_max": max(m["connections"], default=0),
        "rss_flatness": [flatness(mem.rss) for mem in members],
        "rss_samples_mb": [downsample(mem.rss, 60) for mem in members],
        "db_size_samples": downsample(m["sizes"], 60),
        **({"live": live_summary(m["series"], m["produced"], m["plan"])} if m["series"] else {}),
    }


def sample_live(conn: Any, members: list[Member], seconds: float, size: int) -> dict[str, Any]:
    """One live-mode sample: RSS per process, database and table bytes, partial rows."""
    tables = dict(
        conn.execute(
            "SELECT relname, pg_total_relation_size(relid) FROM pg_stat_user_tables"
        ).fetchall()
    )
    results = sum(
        tables.get(t, 0) for t in ("window_summaries", "feature_results", "window_claims")
    )
    partial_rows = conn.execute("SELECT count(*) FROM partials").fetchone()[0]
    return {
        "s": round(seconds, 1),
        "rss_mb": [round(mem.rss[-1], 1) if mem.rss else None for mem in members],
        "db_mb": round(size / 1e6, 2),
        "partials_mb": round(tables.get("partials", 0) / 1e6, 2),
        "results_mb": round(results / 1e6, 2),
        "partial_rows": partial_rows,
    }


def explain_due_windows(conn: Any) -> list[str]:
    """EXPLAIN ANALYZE of the due-windows query (Store.due_windows' SQL) on the run's database."""
    # Refresh the planner's statistics and the visibility map, as autovacuum would in time.
    conn.execute("VACUUM ANALYZE partials")
    conn.execute("VACUUM ANALYZE window_claims")
    highest = conn.execute("SELECT max(window_end) FROM partials").fetchone()[0] or 0.0
    rows = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS) SELECT DISTINCT p.model, p.window_start, p.window_end "
        "FROM partials p WHERE NOT (EXISTS (SELECT * FROM window_claims c WHERE "
        "c.model = p.model AND c.window_start = p.window_start AND c.status = 'done')) "
        "AND p.window_end <= %s ORDER BY p.model, p.window_start",
        (highest,),
    ).fetchall()
    return [r[0] for r in rows]


def live_summary(
    series: list[dict[str, Any]], produced: list[int] | None, plan: list[str] | None
) -> dict[str, Any]:
    """The live run's series once a minute (and the last sample), RSS drift, the plan."""
    minute = []
    next_at = 0.0
    for sample in series:
        if sample["s"] >= next_at:
            minute.append(sample)
            next_at += 60.0
    if series and (not minute or minute[-1] is not series[-1]):
        minute.append(series[-1])
    rss = [
        [s["rss_mb"][k] for s in series if s["rss_mb"][k]] for k in range(len(series[0]["rss_mb"]))
    ]
    # The second half (retention reached, every window state in place): its spread is what
    # "flat" means once warmed up; rss_flatness compares it with the sample at 10 %.
    late = [r[len(r) // 2 :] for r in rss]
    return {
        "produced": sum(produced or []),
        "per_minute": minute,
        "rss_flatness": [flatness(r) for r in rss],
        "rss_second_half_mb": [[min(r), statistics.median(r), max(r)] if r else None for r in late],
        "rss_second_half_spread": [
            round((max(r) - min(r)) / statistics.median(r), 3) if r else None for r in late
        ],
        "due_windows_plan": plan,
        "series": series,
    }


def downsample(values: list[Any], count: int) -> list[Any]:
    """Return at most ``count`` evenly spaced items of ``values`` (the last one included)."""
    if len(values) <= count:
        return list(values)
    step = len(values) / count
    return [values[int(k * step)] for k in range(count - 1)] + [values[-1]]


def flatness(samples: list[float]) -> float | None:
    """Return the largest deviation of the second half's samples from the sample at 10 %.

    As a share of that baseline (0.1: within 10 %); None with too few samples.
    """
    if len(samples) < 10:
        return None
    baseline = samples[len(samples) // 10]
    half = samples[len(samples) // 2 :]
    return round(max(abs(x - baseline) for x in half) / baseline, 3) if baseline else None


# --- report ---------------------------------------------------------------------------------

COLUMNS = (
    ("processes", "procs", "{}"),
    ("records_per_s", "rec/s", "{:,}"),
    ("cpu_s_per_record", "CPU us/rec", "{:.0f}", 1e6),
    ("checkpoints_per_s", "ckpt/s", "{}"),
    ("partials_per_checkpoint", "rows/ckpt", "{:,.0f}"),
    ("bytes_per_checkpoint", "MB/ckpt", "{:.2f}", 1e-6),
    ("checkpoint_p50_s", "ckpt p50 s", "{:.3f}"),
    ("checkpoint_p99_s", "ckpt p99 s", "{:.3f}"),
    ("windows_per_s", "win/s", "{}"),
    ("due_to_evaluated_p50_s", "eval lag p50", "{:.1f}"),
    ("due_to_evaluated_p99_s", "eval lag p99", "{:.1f}"),
    ("due_to_gauge_p99_s", "gauge lag p99", "{:.1f}"),
    ("rss_mb_max", "RSS MB", "{:.0f}"),
    ("db_growth_bytes_per_event_hour", "DB MB/h", "{:,.0f}", 1e-6),
    ("connections_max", "conns", "{}"),
)


def cell(row: dict[str, Any], spec: tuple[Any, ...]) -> str:
    """One table cell: the value formatted, or ``-`` when unknown."""
    value = row.get(spec[0])
    if value is None:
        return "-"
    if len(spec) > 3:
        value = value * spec[3]
    return spec[2].format(value)


def print_table(runs: list[dict[str, Any]]) -> None:
    """Print one line per process count, then the per-process figures."""
    widths = [max(len(c[1]), 9) for c in COLUMNS]
    print(" ".join(c[1].rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in runs:
        print(" ".join(cell(row, c).rjust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in runs:
        print(
            f"  {row['processes']} process(es): rec/s per process "
            f"{row['records_per_s_per_process']}, CPU s {row['process_cpu_s']}, RSS MB "
            f"{row['rss_mb_per_process_final']}, eval s/window by features "
            f"{row['eval_s_per_window_by_features']}, servers CPU us/rec "
            f"{row['servers_cpu_s_per_record'] * 1e6:.0f}, scrape {row['scrape_s_mean']} s / "
            f"{row['scrape_bytes'] / 1e6:.1f} MB"
        )


def predictions(runs: list[dict[str, Any]], cores: float) -> list[dict[str, Any]]:
    """The capacity model's throughput for each run, fitted on the 1-process run."""
    base = next((r for r in runs if r["processes"] == 1), None)
    if base is None or not base["records_per_s"]:
        return []
    out = []
    # The 1-process run's CPU per record over the timed interval (the ingest rate's own
    # cost), and the cores one process reached meanwhile.
    c = base.get("timed_cpu_s_per_record") or base["cpu_s_per_record"]
    s = base.get("timed_servers_cpu_s_per_record") or base["servers_cpu_s_per_record"]
    process_cores = min(1.0, base["records_per_s"] * c)
    for row in runs:
        predicted = capacity_model.throughput(
            row["processes"],
            cpu_per_record_s=c,
            server_cpu_per_record_s=s,
            machine_cores=cores,
            process_cores=process_cores,
        )
        measured = row["records_per_s"] or 0
        out.append(
            {
                "processes": row["processes"],
                "predicted_records_per_s": round(predicted),
                "measured_records_per_s": measured,
                "error": round(measured / predicted - 1, 3) if predicted else None,
            }
        )
    return out


def markdown(report: dict[str, Any]) -> str:
    """Return the report's runs and the capacity model's check as Markdown tables."""
    runs, model = report["runs"], report.get("capacity_model") or []
    header = [c[1] for c in COLUMNS]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(cell(row, c) for c in COLUMNS) + " |" for row in runs),
    ]
    if model:
        lines += [
            "",
            "| processes | model: records/s | measured records/s | measured / model - 1 |",
            "|---|---|---|---|",
            *(
                f"| {p['processes']} | {p['predicted_records_per_s']:,} | "
                f"{p['measured_records_per_s']:,} | {p['error']:+.0%} |"
                for p in model
            ),
        ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument(
        "--feature-mix",
        default=None,
        help="comma-separated feature counts the models cycle through (default: all --features)",
    )
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--windows", type=int, default=10)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--processes", default="1,2,3")
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between DB polls")
    parser.add_argument("--scrape", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--no-per-feature", action="store_true", help="metrics.per_feature off")
    parser.add_argument("--machine-cores", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument(
        "--partials-retention",
        type=float,
        default=7 * 86400.0,
        help="retention.partials of every model, seconds (default 7 days, the default)",
    )
    parser.add_argument(
        "--retention-interval", type=float, default=3600.0, help="scheduler.retention_interval_s"
    )
    parser.add_argument(
        "--live-rate",
        type=float,
        default=None,
        help="live mode: produce this many records/s in all, event time = wall time, "
        "WHILE the processes consume (--duration seconds; --records and --windows ignored)",
    )
    parser.add_argument(
        "--duration", type=float, default=600.0, help="live mode: seconds of traffic (x 60)"
    )
    parser.add_argument(
        "--trace-memory",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run the processes under tracemalloc (benchmarks.traced_run): heap growth every "
        "SECONDS into OUTPUT with .NprocK.tracemalloc.txt",
    )
    parser.add_argument("--keep", action="store_true", help="keep the configs and process logs")
    parser.add_argument(
        "--report", type=Path, default=None, help="print a results JSON as Markdown and exit"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the 1-process run (every thread; OUTPUT with .1proc.prof), ~1.5x slower",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Start the servers, produce the fleet, run each process count, report."""
    args = parse_args(argv)
    if args.report is not None:
        print(markdown(json.loads(args.report.read_text())))
        return 0
    from tests.apache_kafka import start_kafka
    from tests.postgres import start_cluster
    from tests.servers import unique_name

    mix = tuple(int(x) for x in args.feature_mix.split(",")) if args.feature_mix else None
    if args.live_rate is not None:
        args.windows = max(1, round(args.duration / WINDOW_S))
        args.records = round(args.live_rate * args.windows * WINDOW_S)
    fleet = FleetSpec(
        models=args.models,
        features=max(mix) if mix else args.features,
        partitions=args.partitions,
        records=args.records,
        windows=args.windows,
        zipf_s=args.zipf,
        feature_mix=mix,
    )
    counts = [int(x) for x in args.processes.split(",")]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    print(f"fleet: {fleet}", flush=True)
    broker = start_kafka(properties={"message.max.bytes": "8388608"})
    cluster = start_cluster()
    work = Path(tempfile.mkdtemp(prefix="driftline-scale-"))
    try:
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        assert broker.process is not None
        topic = unique_name("fleet")
        create_topics(broker.bootstrap, topic, fleet.partitions)
        produced = (
            {"records": fleet.records, "live_rate": args.live_rate}
            if args.live_rate is not None
            else produce(fleet, broker.bootstrap, topic, args.producers)
        )
        print(f"produced: {produced}", flush=True)
        began = time.perf_counter()
        scratch = write_config(
            work / "profiles.yaml", fleet, bootstrap=broker.bootstrap, topic=topic,
            group="x", database="sqlite:///unused.db",
        )  # fmt: skip
        profiles = build_profiles(scratch, fleet)
        print(f"built {len(profiles)} profiles in {time.perf_counter() - began:.1f} s", flush=True)
        runs = []
        for count in counts:
            print(f"run: {count} process(es)", flush=True)
            row = run_processes(
                count,
                fleet,
                profiles,
                bootstrap=broker.bootstrap,
                topic=topic,
                admin_url=cluster.admin_url,
                postmaster=postmaster,
                broker_pid=broker.process.pid,
                work=work,
                args=args,
            )
            runs.append(row)
            print(json.dumps(row), flush=True)
    finally:
        broker.stop()
        cluster.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print_table(runs)
    model = predictions(runs, args.machine_cores)
    if model:
        print("capacity model (fitted on the 1-process run) vs measured:")
        for p in model:
            print(
                f"  {p['processes']} process(es): predicted {p['predicted_records_per_s']:,} "
                f"rec/s, measured {p['measured_records_per_s']:,} rec/s "
                f"({p['error']:+.0%})"
            )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average": list(os.getloadavg()),
        },
        "fleet": asdict(fleet),
        "produced": produced,
        "runs": runs,
        "capacity_model": model,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

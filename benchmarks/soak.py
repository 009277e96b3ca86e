"""Memory soak: one driftline Ingestor over a long stream, its RSS sampled as windows close.

Run from the repository root, in driftline's virtualenv::

    .venv/bin/python -m benchmarks.soak --records 5000000        # the issue's soak
    .venv/bin/python -m benchmarks.soak --records 300000         # quick check of the script

The workload is the one of :mod:`benchmarks.ingest` (20 features, about 600 bytes of
JSON, 4 partitions), but the stream is long in event time too: every
``--records-per-window`` records (10,000 by default) start a new one-minute window, so
5 million records span 500 windows and old windows keep closing while the stream
advances. Producer processes write the topic WHILE the first consumer reads it (the
consumer is not allowed to overtake them: it waits at the end of the log).

A FRESH driftline process (its own consumer group and SQLite database) consumes the
whole topic and prints its ``VmRSS``, peak RSS and the number of partial sketches it
holds in memory every ``--sample-every`` records (250,000 by default, smaller for
short streams so that there are at least 20 samples). The Ingestor releases the
partials of windows that closed once they are stored, so that number stays small.

Verdict: the baseline is the first sample at or after ``--warmup`` of the stream (10 %
by default, when allocations have settled); memory is "flat" when every sample of the
second half of the stream is within ``--tolerance`` (10 %) of it. Results go to
``benchmarks/results/soak.json``.

The embedded broker (Tansu 0.6, in-memory engine) keeps every record in memory and
ignores DeleteRecords, so ITS memory grows with the stream (about 0.7 kB per record, so
some 3.5 GB for 5 million): it is sampled and reported, but it is a different process
from the one under test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.ingest import (
    REPO_ROOT,
    broker,
    create_topics,
    load_average,
    proc_status,
    start_children,
    stop_children,
    store_reference,
    wait_children,
    write_config,
)

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "soak.json"


def sample_interval(records: int, requested: int | None) -> int:
    """Records between samples: ``requested``, else 250,000 or a 20th of a short stream."""
    if requested:
        return requested
    return max(min(250_000, records // 20), 1)


def run_variant(
    name: str,
    bootstrap: str,
    topic: str,
    work: Path,
    args: argparse.Namespace,
    broker_pid: int,
) -> dict[str, Any]:
    """Consume the whole topic in a fresh driftline process; return its samples and result."""
    group = f"soak-{name}-{secrets.token_hex(3)}"
    directory = work / name
    directory.mkdir()
    config = write_config(directory, bootstrap, topic, group)
    store_reference(config, args.seed)
    spec = {
        "bootstrap": bootstrap,
        "topic": topic,
        "group": group,
        "total": args.records,
        "partitions": args.partitions,
        "max_poll_records": 2000,
        "timeout": args.timeout,
        "config": str(config),
        "sample_every": sample_interval(args.records, args.sample_every),
    }
    command = ["-m", "benchmarks.ingest", "--role", "driftline", "--spec", json.dumps(spec)]
    log_path = directory / "driftline.stderr"
    with log_path.open("w") as log:  # a file, not a pipe: a full pipe would block the child
        child = subprocess.Popen(
            [sys.executable, *command], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=log, text=True
        )
    samples: list[dict[str, Any]] = []
    result: dict[str, Any] | None = None
    print(f"{name}: driftline pid {child.pid}, group {group}", flush=True)
    print(
        f"  {'records':>10} {'seconds':>8} {'RSS MB':>8} {'peak MB':>8} {'partials':>9} "
        f"{'broker MB':>10}",
        flush=True,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if not line.startswith("{"):
                continue
            data = json.loads(line)
            if not data.get("sample"):
                result = data
                continue
            try:
                data["broker_rss_mb"] = round(proc_status(broker_pid)["VmRSS"] / 1024, 1)
            except OSError:
                data["broker_rss_mb"] = None
            samples.append(data)
            print(
                f"  {data['records']:>10,} {data['seconds']:>8.1f} {data['rss_mb']:>8.1f} "
                f"{data['peak_rss_mb']:>8.1f} {data['partials_in_memory']:>9,} "
                f"{data['broker_rss_mb'] or 0:>10.0f}"
                + ("  (after the final checkpoint)" if data.get("final") else ""),
                flush=True,
            )
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if child.returncode != 0 or result is None:
        stderr = log_path.read_text(errors="replace")
        raise RuntimeError(f"driftline soak child failed ({child.returncode}):\n{stderr}")
    return {
        "variant": name,
        "result": result,
        "samples": samples,
        "verdict": verdict(samples, args.records, args.warmup, args.tolerance),
    }


def verdict(
    samples: list[dict[str, Any]], total: int, warmup: float, tolerance: float
) -> dict[str, Any]:
    """Compare the second half's RSS samples with the first steady-state sample."""
    # The sample after the final checkpoint is taken after the clients closed (the
    # partitions were revoked, their state dropped): it is kept in the series only.
    samples = [s for s in samples if not s.get("final")] or samples
    if not samples:
        return {"flat": None, "reason": "no samples"}
    base = next((s for s in samples if s["records"] >= warmup * total), samples[0])
    first_half = [s["rss_mb"] for s in samples if base["records"] <= s["records"] <= total / 2]
    second_half = [s for s in samples if s["records"] > total / 2] or samples[-1:]
    deviations = [(s["rss_mb"] - base["rss_mb"]) / base["rss_mb"] for s in second_half]
    worst = max(deviations, key=abs)
    last = samples[-1]
    return {
        "baseline_records": base["records"],
        "baseline_rss_mb": base["rss_mb"],
        "second_half_min_rss_mb": min(s["rss_mb"] for s in second_half),
        "second_half_max_rss_mb": max(s["rss_mb"] for s in second_half),
        "max_deviation": round(worst, 4),
        "first_half_median_rss_mb": statistics.median(first_half or [base["rss_mb"]]),
        "final_growth": round((last["rss_mb"] - base["rss_mb"]) / base["rss_mb"], 4),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in samples),
        "last_partials_in_memory": last["partials_in_memory"],
        "tolerance": tolerance,
        "flat": abs(worst) <= tolerance,
    }


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    """Start the broker and the producers, run every variant, return the report."""
    windows = max(args.records // args.records_per_window, 1)
    topic = f"soak-{secrets.token_hex(4)}"
    variants = []
    with broker() as server, tempfile.TemporaryDirectory(prefix="driftline-soak-") as tmp:
        bootstrap = server.bootstrap
        create_topics(bootstrap, {topic: args.partitions, f"{topic}-labels": 1})
        print(
            f"broker {bootstrap} (pid {server.pid}); producing {args.records:,} records over "
            f"{windows} one-minute windows to {args.partitions} partitions, concurrently",
            flush=True,
        )
        produce_start = time.perf_counter()
        specs = [
            {
                "bootstrap": bootstrap,
                "topic": topic,
                "partitions": args.partitions,
                "own": list(range(k, args.partitions, args.producers)),
                "total": args.records,
                "windows": windows,
                "seed": args.seed,
            }
            for k in range(min(args.producers, args.partitions))
        ]
        producers = start_children("produce", specs)
        produced: dict[str, Any] | None = None
        try:
            for name in ("as-is",):
                variants.append(run_variant(name, bootstrap, topic, Path(tmp), args, server.pid))
                if produced is None:
                    results = wait_children(producers, args.timeout)
                    produced = {
                        "records": sum(r["records"] for r in results),
                        "seconds": round(time.perf_counter() - produce_start, 1),
                    }
        finally:
            stop_children(producers)
        broker_rss = round(proc_status(server.pid)["VmRSS"] / 1024, 1)
    return {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_after": load_average(),
        },
        "workload": {
            "records": args.records,
            "partitions": args.partitions,
            "windows": windows,
            "records_per_window": args.records_per_window,
            "seed": args.seed,
        },
        "produce": produced,
        "broker_rss_mb_at_end": broker_rss,
        "variants": variants,
    }


def print_summary(report: dict[str, Any]) -> None:
    """One line per variant: baseline, second-half range, deviation, verdict."""
    print()
    print(
        f"{report['workload']['records']:,} records over {report['workload']['windows']} "
        f"windows; broker RSS at the end {report['broker_rss_mb_at_end']:.0f} MB (not driftline)"
    )
    for variant in report["variants"]:
        v = variant["verdict"]
        result = variant["result"]
        flat = "flat" if v["flat"] else "NOT flat"
        print(
            f"{variant['variant']:11} baseline {v['baseline_rss_mb']:.0f} MB at "
            f"{v['baseline_records']:,}; second half {v['second_half_min_rss_mb']:.0f}-"
            f"{v['second_half_max_rss_mb']:.0f} MB; max deviation {v['max_deviation']:+.1%} "
            f"({flat} within {v['tolerance']:.0%}); partials in memory at the last sample "
            f"{v['last_partials_in_memory']:,}; {result['records_per_s']:,} records/s"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--records", type=int, default=5_000_000, help="records in the stream")
    parser.add_argument("--partitions", type=int, default=4, help="topic partitions")
    parser.add_argument(
        "--records-per-window", type=int, default=10_000, help="records per one-minute window"
    )
    parser.add_argument("--sample-every", type=int, help="records between RSS samples")
    parser.add_argument("--warmup", type=float, default=0.1, help="baseline after this fraction")
    parser.add_argument("--tolerance", type=float, default=0.10, help="flat within this")
    parser.add_argument("--producers", type=int, default=2, help="producer processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=4 * 3600.0, help="per process, seconds")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results")
    args = parser.parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit status 1 when a variant's memory is not flat."""
    args = parse_args(argv)
    report = run_soak(args)
    print_summary(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {args.output}")
    return 0 if all(v["verdict"]["flat"] for v in report["variants"]) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Whole-process benchmark: ``driftline check`` and ``--help`` against the peers, as users run them.

Usage (from the repository root; the peers need ``bash benchmarks/setup_peers.sh``)::

    .venv/bin/python -m benchmarks.startup [--rows 100000] [--seed 0] [--repeat 7]
        [--skip evidently nannyml ...] [--json]

The in-process drift table of ``benchmarks.compare`` times the statistics
after every library is imported. A user pays for the whole process: the
interpreter, the imports, reading the files, the statistics and the output.
This module writes ``benchmarks/data.py``'s seeded pair (``--rows`` rows, 20
numeric and 5 categorical columns) to two parquet files in a temporary
directory, then runs each command below as a fresh process:

* ``driftline check --reference REF --current CUR --format json``, and the
  same with the default table output (rich's table, captured, not a terminal);
* ``driftline --help`` and ``driftline check --help``;
* Evidently's ``DataDriftPreset`` and NannyML's univariate drift (default
  chunking) on the same two files, each from a script that does what
  ``check`` does (``benchmarks/peers/check_files.py``, in ``.venv-peers``);
* two floors for scale: the bare interpreter, and ``import pandas,
  pyarrow.parquet`` (what any Python tool that reads parquet into pandas pays).

One untimed round warms the page cache, then ``--repeat`` rounds run every
command once each, in turn, so that load from other processes falls on all
of them alike. Reported: the median and the fastest wall time, and the median
CPU time (user + system of the process, which contention from other processes
inflates less than wall time). ``driftline`` is the console script of this
virtualenv with ``PYTHONPATH`` set to this checkout, so a work tree measures
its own code.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEERS = ("evidently", "nannyml")
HEADERS = ("command", "median (s)", "fastest (s)", "CPU median (s)", "vs check", "flagged")
#: The row the others are compared with (the peers' scripts also print one JSON line).
CHECK = "driftline check --format json"


class Command(NamedTuple):
    """One process to time: its row name, its argv, and whether it reports drift verdicts."""

    name: str
    argv: list[str]
    checks: bool = False
    """True when the process prints flagged features (driftline's JSON or a peer's line)."""


def driftline_argv() -> list[str]:
    """Return how to start ``driftline``: the console script when installed, else ``-m``."""
    script = Path(sys.executable).with_name("driftline")
    return [str(script)] if script.exists() else [sys.executable, "-m", "monitor.cli"]


def commands(reference: Path, current: Path, skip: Sequence[str]) -> list[Command]:
    """Return the commands of one round, driftline's first."""
    driftline = driftline_argv()
    files = ["--reference", str(reference), "--current", str(current)]
    out = [
        Command(CHECK, [*driftline, "check", *files, "--format", "json"], True),
        Command("driftline check (table output)", [*driftline, "check", *files]),
        Command("driftline --help", [*driftline, "--help"]),
        Command("driftline check --help", [*driftline, "check", "--help"]),
    ]
    script = str(ROOT / "benchmarks" / "peers" / "check_files.py")
    peer_names = {"evidently": "Evidently DataDriftPreset", "nannyml": "NannyML univariate drift"}
    for peer in PEERS:
        if peer not in skip:
            argv = [str(PEERS_PYTHON), script, peer, str(reference), str(current)]
            out.append(Command(peer_names[peer], argv, True))
    floors = [
        Command("python (interpreter only)", [sys.executable, "-c", "pass"]),
        Command(
            "python: import pandas, pyarrow.parquet",
            [sys.executable, "-c", "import pandas, pyarrow.parquet"],
        ),
    ]
    return out + ([] if "floors" in skip else floors)


class Run(NamedTuple):
    """One timed process."""

    wall: float
    cpu: float
    returncode: int
    stdout: str
    stderr: str


def run_once(argv: Sequence[str], timeout: float) -> Run:
    """Run one process to its end; return its wall time, its CPU time and its output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        list(argv),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, done.returncode, done.stdout, done.stderr)


def flagged_features(command: Command, stdout: str) -> list[str] | None:
    """Return the features a check process reported as drifted (None for other commands)."""
    if not command.checks:
        return None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        return None
    payload = json.loads(lines[-1])
    if "features" in payload:  # driftline check --format json
        return sorted(f["name"] for f in payload["features"] if f["drift"])
    return list(payload["flagged"])


def measure(
    rows: int, seed: int, repeat: int, skip: Sequence[str], timeout: float
) -> dict[str, Any]:
    """Write the parquet pair, run every command ``repeat`` times in turn; return the results."""
    from benchmarks.data import make_pair

    with tempfile.TemporaryDirectory(prefix="driftline-startup-") as tmp:
        reference_path = Path(tmp) / "reference.parquet"
        current_path = Path(tmp) / "current.parquet"
        reference, current = make_pair(rows, seed)
        reference.to_parquet(reference_path)
        current.to_parquet(current_path)
        del reference, current
        todo = commands(reference_path, current_path, skip)
        runs: dict[str, list[Run]] = {c.name: [] for c in todo}
        errors: dict[str, str] = {}
        for round_ in range(repeat + 1):  # round 0 warms the page cache and is not counted
            for command in todo:
                if command.name in errors:
                    continue
                try:
                    run = run_once(command.argv, timeout)
                except (OSError, subprocess.TimeoutExpired) as error:
                    errors[command.name] = str(error)
                    continue
                if run.returncode != 0:
                    tail = (run.stderr.strip().splitlines() or ["no output"])[-1]
                    errors[command.name] = f"exit {run.returncode}: {tail}"
                elif round_ > 0:
                    runs[command.name].append(run)
    results = []
    for command in todo:
        if command.name in errors:
            results.append({"command": command.name, "error": errors[command.name]})
            continue
        walls = [r.wall for r in runs[command.name]]
        results.append(
            {
                "command": command.name,
                "argv": command.argv,
                "median_s": statistics.median(walls),
                "fastest_s": min(walls),
                "cpu_median_s": statistics.median(r.cpu for r in runs[command.name]),
                "wall_s": walls,
                "flagged": flagged_features(command, runs[command.name][-1].stdout),
            }
        )
    return {
        "rows": rows,
        "seed": seed,
        "repeat": repeat,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "load_average": os.getloadavg(),
        "results": results,
    }


def table_rows(measured: dict[str, Any]) -> list[list[str]]:
    """Return the table's cells: times, the ratio to ``driftline check``, the verdicts."""
    from benchmarks.compare import verdict

    by_name = {r["command"]: r for r in measured["results"]}
    check = by_name.get(CHECK, {}).get("median_s")
    rows = []
    for result in measured["results"]:
        if "error" in result:
            rows.append([result["command"], "-", "-", "-", "-", f"error: {result['error']}"])
            continue
        median = result["median_s"]
        ratio = "-" if not check or result["command"] == CHECK else ""
        if not ratio:
            ratio = f"{median / check:.1f}x" if median >= check else f"{median / check:.2f}x"
        flagged = result["flagged"]
        rows.append(
            [
                result["command"],
                f"{median:.3f}",
                f"{result['fastest_s']:.3f}",
                f"{result['cpu_median_s']:.3f}",
                ratio,
                "-" if flagged is None else verdict(flagged),
            ]
        )
    return rows


def title(measured: dict[str, Any]) -> str:
    """Return the table's title (rows, repetitions, load)."""
    load = ", ".join(f"{x:.1f}" for x in measured["load_average"])
    return (
        f"Whole processes on two {measured['rows']:,}-row parquet files (20 numeric, "
        f"5 categorical columns): median of {measured['repeat']} runs each, in turn "
        f"(load average at the end: {load})"
    )


def main() -> None:
    """Measure and print the table (or, with ``--json``, one JSON line of the results)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of each command")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=[*PEERS, "floors"], help="commands to leave out"
    )
    parser.add_argument("--timeout", type=float, default=600, help="seconds per process")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON line")
    args = parser.parse_args()
    if set(PEERS) - set(args.skip) and not PEERS_PYTHON.exists():
        sys.exit("the peers' virtualenv is missing: run `bash benchmarks/setup_peers.sh` first")
    measured = measure(args.rows, args.seed, args.repeat, args.skip, args.timeout)
    if args.json:
        print(json.dumps(measured), flush=True)
        return
    from rich.console import Console

    from benchmarks.compare import Block, rich_table

    console = Console()
    console.print(rich_table(Block(title(measured), HEADERS, table_rows(measured), "lrrrrl")))


if __name__ == "__main__":
    main()

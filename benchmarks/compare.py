"""Side-by-side benchmark: driftline against Evidently, NannyML and Alibi Detect, in one run.

Usage (``make bench`` sets up the peers' virtualenv first)::

    .venv/bin/python -m benchmarks.compare --rows 100000 1000000 [--seed 0] [--skip evidently]

Every library runs in its own subprocess on the same seeded data
(``benchmarks/data.py``: 20 numeric and 5 categorical columns; five of them
drift), so each gets a clean process for its peak memory. driftline runs in
this virtualenv, the peers in ``.venv-peers`` (they need pandas < 3). Prints a
table and writes ``benchmarks/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.data import DRIFTED

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
RUNNERS = {
    "driftline": [sys.executable, "-m", "benchmarks.run_driftline"],
    "driftline-exact": [sys.executable, "-m", "benchmarks.run_driftline", "--exact"],
    "evidently": [str(PEERS_PYTHON), "benchmarks/peers/run_evidently.py"],
    "nannyml": [str(PEERS_PYTHON), "benchmarks/peers/run_nannyml.py", "--chunks", "default"],
    "nannyml-1chunk": [str(PEERS_PYTHON), "benchmarks/peers/run_nannyml.py", "--chunks", "1"],
    "alibi-detect": [str(PEERS_PYTHON), "benchmarks/peers/run_alibi.py"],
}


def run_one(name: str, rows: int, seed: int, timeout: float) -> dict[str, object]:
    """Run one library's runner and return its JSON result (or an ``error`` entry)."""
    command = [*RUNNERS[name], "--rows", str(rows), "--seed", str(seed)]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"library": name, "rows": rows, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"library": name, "rows": rows, "error": tail}
    result: dict[str, object] = json.loads(lines[-1])
    result["library"] = name
    return result


def verdict(flagged: object) -> str:
    """Describe a flagged-feature list against the truth: misses and false alarms."""
    if not isinstance(flagged, list):
        return "-"
    found = set(flagged)
    missed = sorted(set(DRIFTED) - found)
    extra = sorted(found - set(DRIFTED))
    parts = [f"{len(found & set(DRIFTED))}/{len(DRIFTED)} drifted found"]
    if missed:
        parts.append(f"missed {', '.join(missed)}")
    if extra:
        parts.append(f"false alarms: {', '.join(extra)}")
    return "; ".join(parts)


HEADERS = ("rows", "library", "wall time (s)", "peak RSS (MB)", "RSS added (MB)", "flagged")


def cells(result: dict[str, object]) -> list[str]:
    """Return one result as the table's cells (wall time, memory, flagged-feature verdict)."""
    rows, library = f"{result['rows']:,}", str(result["library"])
    if "error" in result:
        return [rows, library, "-", "-", "-", f"error: {result['error']}"]
    peak = float(str(result["peak_rss_mb"]))
    added = peak - float(str(result.get("data_mb", peak)))
    seconds = float(str(result["seconds"]))
    return [
        rows,
        library,
        f"{seconds:.2f}",
        f"{peak:.0f}",
        f"{added:.0f}",
        verdict(result["flagged"]),
    ]


def markdown(results: list[dict[str, object]], command: str) -> str:
    """Return the results as the README's markdown table."""
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}. Peak RSS is the "
        "whole process (imports and data included); RSS added is the peak minus the RSS "
        "once the data frames exist.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|---:|---|---:|---:|---:|---|",
    ]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every library at every size and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(RUNNERS))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()
    if not PEERS_PYTHON.exists():
        sys.exit("the peers' virtualenv is missing: run `bash benchmarks/setup_peers.sh` first")
    console = Console()
    results = []
    for rows in args.rows:
        for name in RUNNERS:
            if name in args.skip:
                continue
            console.print(f"[dim]{rows:,} rows: {name} ...[/]")
            results.append(run_one(name, rows, args.seed, args.timeout))
    table = Table(title="Drift check: data frames to per-feature results")
    for header in HEADERS:
        table.add_column(header)
    for result in results:
        table.add_row(*cells(result))
    console.print(table)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    command = "python -m benchmarks.compare " + " ".join(sys.argv[1:])
    (out / "latest.json").write_text(json.dumps(results, indent=2))
    (out / "latest.md").write_text(markdown(results, command))


if __name__ == "__main__":
    main()

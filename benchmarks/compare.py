"""Side-by-side benchmark: driftline against Evidently, NannyML and Alibi Detect, in one run.

Usage (``make bench`` sets up the peers' virtualenv first)::

    .venv/bin/python -m benchmarks.compare --rows 100000 1000000 [--seed 0]
        [--skip evidently ... | drift | cbpe | shap | startup] [--cbpe-chunk-size 5000]
        [--shap-rows 10000] [--shap-sampled-rows 1000] [--startup-rows 100000]
        [--startup-repeat 7] [--timeout 900]

One run, four parts, each measured in processes of its own so that every
peak memory figure is that process's alone:

* drift: every library in its own subprocess on the same seeded data
  (``benchmarks/data.py``: 20 numeric and 5 categorical columns; five of them
  drift) at every ``--rows``. driftline runs in this virtualenv, the peers in
  ``.venv-peers`` (they need pandas < 3);
* CBPE: ``python -m benchmarks.cbpe --json`` (driftline's CBPE against
  NannyML's, which that module runs in the peers' virtualenv) on NannyML's
  car-loan data in ``--cbpe-chunk-size`` chunks;
* SHAP: ``python -m benchmarks.shap_attribution --json`` (TreeExplainer and
  attribution drift on ``--shap-rows`` rows; the sampled explainer on
  ``--shap-sampled-rows`` rows, 0 skips it);
* startup: ``python -m benchmarks.startup --json`` (whole processes as users run
  them: ``driftline check`` on two ``--startup-rows``-row parquet files,
  ``driftline --help``, ``driftline check --help``, and the peers' scripts
  reading the same files; the median of ``--startup-repeat`` runs each).

``--skip`` takes drift runner names, ``drift`` (all of them), ``cbpe``,
``shap`` and ``startup``. Prints the tables and writes
``benchmarks/results/latest.json`` (all results) and ``latest.md`` (the
tables, for the README). The CBPE and SHAP
modules also write their own ``cbpe.json`` and ``shap_attribution.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from rich.console import Console
from rich.table import Table

from benchmarks import cbpe, shap_attribution, startup
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
#: What needs the peers' virtualenv (the CBPE benchmark reads NannyML's data from it).
NEEDS_PEERS = {"evidently", "nannyml", "nannyml-1chunk", "alibi-detect", "cbpe", "startup"}
SECTIONS = ("drift", "cbpe", "shap", "startup")


def run_json(command: Sequence[str], timeout: float) -> dict[str, Any]:
    """Run one benchmark process; return the last JSON line it prints (or an ``error`` entry)."""
    try:
        done = subprocess.run(
            list(command), cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    except OSError as error:
        return {"error": str(error)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_one(name: str, rows: int, seed: int, timeout: float) -> dict[str, object]:
    """Run one library's drift runner and return its JSON result (or an ``error`` entry)."""
    command = [*RUNNERS[name], "--rows", str(rows), "--seed", str(seed)]
    result: dict[str, object] = {"rows": rows, **run_json(command, timeout)}
    result["library"] = name
    return result


def run_cbpe(chunk_size: int, timeout: float) -> dict[str, Any]:
    """Run ``benchmarks.cbpe`` (driftline and NannyML) in its own process; return its results."""
    command = [sys.executable, "-m", "benchmarks.cbpe", "--json", "--chunk-size", str(chunk_size)]
    return run_json(command, timeout)


def run_shap(rows: int, sampled_rows: int, seed: int, timeout: float) -> dict[str, Any]:
    """Run ``benchmarks.shap_attribution`` in its own process; return its results."""
    command = [sys.executable, "-m", "benchmarks.shap_attribution", "--json"]
    command += ["--rows", str(rows), "--sampled-rows", str(sampled_rows), "--seed", str(seed)]
    return run_json(command, timeout)


def run_startup(rows: int, repeat: int, seed: int, timeout: float) -> dict[str, Any]:
    """Run ``benchmarks.startup`` (whole processes, driftline and the peers); return its results."""
    command = [sys.executable, "-m", "benchmarks.startup", "--json", "--rows", str(rows)]
    command += ["--repeat", str(repeat), "--seed", str(seed), "--timeout", str(timeout)]
    # Every command it starts runs `repeat + 1` times, the peers for seconds each.
    return run_json(command, timeout * 4)


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


class Block(NamedTuple):
    """One table of the report (or only notes), rendered for the terminal and for markdown."""

    title: str
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    align: str = ""
    """One ``l`` or ``r`` per column; empty: the first column left, the others right."""
    notes: Sequence[str] = ()


def alignment(block: Block) -> str:
    """Return the block's column alignment, one ``l`` or ``r`` per column."""
    return block.align or "l" + "r" * (len(block.headers) - 1)


def markdown_table(block: Block) -> list[str]:
    """Return the block's table as markdown lines."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in alignment(block)) + "|"
    return [
        "| " + " | ".join(block.headers) + " |",
        rule,
        *("| " + " | ".join(row) + " |" for row in block.rows),
    ]


def rich_table(block: Block) -> Table:
    """Return the block's table for the terminal."""
    table = Table(title=block.title)
    for header, a in zip(block.headers, alignment(block), strict=True):
        table.add_column(header, justify="right" if a == "r" else "left")
    for row in block.rows:
        table.add_row(*row)
    return table


def cbpe_blocks(result: dict[str, Any]) -> list[Block]:
    """Return the CBPE tables: MAE per metric, then each library's times and peak RSS."""
    if "error" in result:
        return [Block("CBPE", notes=[f"error: {result['error']}"])]
    notes = []
    if "error" in result["nannyml"]:
        notes.append(f"NannyML: error: {result['nannyml']['error']}")
    merge = result["driftline"]["merge_exact"]
    notes.append(f"driftline: merged chunk sketches equal the whole set's: {merge}")
    title = (
        f"CBPE on NannyML's car-loan data, {result['chunk_size']:,}-row chunks: mean absolute "
        "error of the estimate against the realized metric per chunk"
    )
    timings = cbpe.timing_rows(result["driftline"], result["nannyml"])
    return [
        Block(title, cbpe.SUMMARY_HEADERS, cbpe.summary_rows(result["summary"])),
        Block("CBPE: wall time and peak RSS", cbpe.TIMING_HEADERS, timings, notes=notes),
    ]


def shap_blocks(result: dict[str, Any]) -> list[Block]:
    """Return the SHAP table: each timed step's wall time and peak RSS."""
    if "error" in result:
        return [Block("SHAP attribution", notes=[f"error: {result['error']}"])]
    settings = result["settings"]
    title = (
        f"SHAP attribution: {settings['model']} with {settings['trees']} trees, "
        f"{settings['features']} features, {settings['rows']:,} rows"
    )
    notes = [
        f"import shap {result['import_shap_seconds']:.2f} s, model fit "
        f"{result['fit_seconds']:.2f} s (both untimed); "
        f"RSS before the timed steps {result['baseline_rss_mb']:.0f} MB",
        f"attribution drift flagged: {', '.join(result['attribution_drifted']) or 'nothing'}; "
        f"share distance {result['share_distance']:.3f}",
    ]
    steps = shap_attribution.step_rows(result["steps"])
    return [Block(title, shap_attribution.STEP_HEADERS, steps, notes=notes)]


def startup_blocks(result: dict[str, Any]) -> list[Block]:
    """Return the whole-process table: each command's median and fastest wall time."""
    if "error" in result:
        return [Block("Whole processes", notes=[f"error: {result['error']}"])]
    rows = startup.table_rows(result)
    return [Block(startup.title(result), startup.HEADERS, rows, "lrrrrl")]


def blocks(
    results: list[dict[str, object]],
    cbpe_result: dict[str, Any] | None,
    shap_result: dict[str, Any] | None,
    startup_result: dict[str, Any] | None = None,
) -> list[Block]:
    """Return the report's tables; a part that was skipped (None or no rows) has none."""
    out = []
    if results:
        rows = [cells(result) for result in results]
        out.append(
            Block("Drift check: data frames to per-feature results", HEADERS, rows, "rlrrrl")
        )
    if startup_result is not None:
        out += startup_blocks(startup_result)
    if cbpe_result is not None:
        out += cbpe_blocks(cbpe_result)
    if shap_result is not None:
        out += shap_blocks(shap_result)
    return out


def markdown(report: list[Block], command: str) -> str:
    """Return the report as the README's markdown."""
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}. Peak RSS is the "
        "whole process (imports and data included); RSS added is the peak minus the RSS "
        "once the data frames exist.",
    ]
    for block in report:
        lines += ["", f"{block.title}:"]
        if block.headers:
            lines += ["", *markdown_table(block)]
        if block.notes:
            lines += ["", *(f"{note}  " for note in block.notes)]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every library at every size, then CBPE and SHAP, and report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=sorted(RUNNERS) + list(SECTIONS),
        help="drift runners to leave out; 'drift' leaves out all of them, 'cbpe'/'shap' a part",
    )
    parser.add_argument("--cbpe-chunk-size", type=int, default=5000)
    parser.add_argument("--shap-rows", type=int, default=10_000)
    parser.add_argument(
        "--shap-sampled-rows", type=int, default=1000, help="0 skips the sampled explainer"
    )
    parser.add_argument("--startup-rows", type=int, default=100_000)
    parser.add_argument("--startup-repeat", type=int, default=7, help="timed runs per command")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per process")
    args = parser.parse_args()
    skip = set(args.skip) | (set(RUNNERS) if "drift" in args.skip else set())
    if NEEDS_PEERS - skip and not PEERS_PYTHON.exists():
        sys.exit("the peers' virtualenv is missing: run `bash benchmarks/setup_peers.sh` first")
    console = Console()
    results = []
    for rows in args.rows:
        for name in RUNNERS:
            if name in skip:
                continue
            console.print(f"[dim]{rows:,} rows: {name} ...[/]")
            results.append(run_one(name, rows, args.seed, args.timeout))
    cbpe_result = shap_result = startup_result = None
    if "startup" not in skip:
        console.print(f"[dim]whole processes, {args.startup_rows:,} rows: driftline, peers ...[/]")
        startup_result = run_startup(
            args.startup_rows, args.startup_repeat, args.seed, args.timeout
        )
    if "cbpe" not in skip:
        console.print(f"[dim]CBPE, {args.cbpe_chunk_size:,}-row chunks: driftline, nannyml ...[/]")
        cbpe_result = run_cbpe(args.cbpe_chunk_size, args.timeout)
    if "shap" not in skip:
        console.print(f"[dim]SHAP attribution, {args.shap_rows:,} rows ...[/]")
        shap_result = run_shap(args.shap_rows, args.shap_sampled_rows, args.seed, args.timeout)

    report = blocks(results, cbpe_result, shap_result, startup_result)
    for block in report:
        if block.headers:
            console.print(rich_table(block))
        for note in block.notes:
            console.print(note)

    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    command = "python -m benchmarks.compare " + " ".join(sys.argv[1:])
    everything = {
        "command": command,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "drift": results,
        "cbpe": cbpe_result,
        "shap": shap_result,
        "startup": startup_result,
    }
    (out / "latest.json").write_text(json.dumps(everything, indent=2) + "\n")
    (out / "latest.md").write_text(markdown(report, command))


if __name__ == "__main__":
    main()

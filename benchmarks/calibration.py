"""Calibration study: how often each library flags a feature, by sample size and shift size.

Usage (the peers need ``.venv-peers``, see ``benchmarks/setup_peers.sh``)::

    .venv/bin/python -m benchmarks.calibration [--sizes 500 5000 50000 1000000] [--reps 20]
        [--large-reps 5] [--quick] [--peers evidently nannyml alibi] [--types normal ...]
        [--min-effect-size X] [--peer-max-size 1000000] [--seed 0] [--timeout 7200]
        [--output benchmarks/results/calibration.json]

The grid: every feature type of :data:`benchmarks.peers.calibrate_peers.TYPES`
(normal, skewed, integer counts, rounded-to-integer, zero-inflated, a 5-level
integer column, a categorical) x every ``--sizes`` (rows per side) x the type's
shift grid (0, 0.02, 0.05, 0.1, 0.2, 0.5 sd for the numeric types; total
variation 0, 0.01, 0.03, 0.05, 0.1, 0.2 for the categorical one) x ``--reps``
seeded repetitions. Each repetition is its own one-column reference/current pair
(:func:`~benchmarks.peers.calibrate_peers.make_cell_pair`), so every library
sees one test per dataset and no multiple-testing correction is involved: the
share at shift 0 is the per-feature false-alarm rate.

* driftline runs in this process: ``compare_frames(reference, current,
  DriftSettings())`` (the sketch path, what the service computes), and with
  ``--min-effect-size X`` a second time with ``DriftSettings(min_effect_size=X)``.
  Its effect size (KS distance for numeric columns, total variation for
  categorical ones) and p-value are kept for every repetition.
* each peer runs in ONE subprocess per size in ``.venv-peers``
  (``benchmarks/peers/calibrate_peers.py``), which regenerates the same datasets
  from the same seeds and runs the peer at its defaults exactly as the
  side-by-side benchmark does (Evidently ``DataDriftPreset``; NannyML
  ``UnivariateDriftCalculator`` KS/chi2 with its default 10-chunk chunker, a
  feature flagged when any chunk alerts; Alibi Detect ``TabularDrift``, p_val
  0.05). The peer processes of one size run concurrently with driftline.

Sizes of 1,000,000 rows and more run ``min(--reps, --large-reps)`` repetitions
(default 5) so the large cells stay feasible; peers are skipped above
``--peer-max-size`` (default 1,000,000: a 10,000,000-row size is driftline's
sketch path only). ``--quick`` is sizes 500 and 5,000 with 10 repetitions.

Prints one markdown table per feature type (rows: shift, columns: size, cells:
``dl x% / ev y% / nm z% / ad w%`` and driftline's median effect size), then for
every type the effect-size thresholds that would meet the study's targets, and
writes everything, per-repetition verdicts included, to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.peers.calibrate_peers import TYPES, make_cell_pair, shifts_of
from detectors.drift import DriftSettings, compare_frames

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_SCRIPT = "benchmarks/peers/calibrate_peers.py"
PEERS = ("evidently", "nannyml", "alibi")
SHORT = {"driftline": "dl", "evidently": "ev", "nannyml": "nm", "alibi": "ad"}
DEFAULT_SIZES = (500, 5_000, 50_000, 1_000_000)
LARGE = 1_000_000
#: Shift index from which the study wants >= 95% flagged at n >= 5,000 (0.2 sd / TV 0.1).
MATERIAL_INDEX = 4
POWER_MIN_ROWS = 5_000


def reps_for(size: int, reps: int, large_reps: int) -> int:
    """Repetitions per cell at ``size``: fewer from 1,000,000 rows on."""
    return min(reps, large_reps) if size >= LARGE else reps


def driftline_cells(
    types: Sequence[str],
    size: int,
    reps: int,
    seed: int = 0,
    min_effect_size: float | None = None,
) -> list[dict[str, Any]]:
    """Run driftline at defaults on every ``(type, shift, rep)`` dataset of one size."""
    default = DriftSettings()
    gated = None if min_effect_size is None else DriftSettings(min_effect_size=min_effect_size)
    cells = []
    for kind in types:
        for shift_index, shift in enumerate(shifts_of(kind)):
            flags, effects, p_values, gated_flags = [], [], [], []
            method = ""
            for rep in range(reps):
                reference, current = make_cell_pair(kind, size, shift_index, rep, seed)
                feature = compare_frames(reference, current, default).features[0]
                method = feature.method
                flags.append(feature.drift)
                effects.append(float(feature.effect_size))
                p_values.append(feature.p_value)
                if gated is not None:
                    gated_flags.append(compare_frames(reference, current, gated).features[0].drift)
            cell: dict[str, Any] = {
                "type": kind,
                "shift_index": shift_index,
                "shift": shift,
                "method": method,
                "flags": flags,
                "share": sum(flags) / reps,
                "effect_sizes": effects,
                "median_effect_size": float(np.median(effects)),
                "p_values": p_values,
            }
            if gated is not None:
                cell["min_effect_flags"] = gated_flags
                cell["min_effect_share"] = sum(gated_flags) / reps
            cells.append(cell)
    return cells


def start_peer(
    library: str, types: Sequence[str], size: int, reps: int, seed: int
) -> subprocess.Popen[str]:
    """Start one peer's batch for one size in ``.venv-peers``."""
    command = [str(PEERS_PYTHON), PEER_SCRIPT, "--library", library, "--size", str(size)]
    command += ["--reps", str(reps), "--seed", str(seed), "--types", *types]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_peer(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Wait for a peer batch; return its JSON result or an ``error`` entry."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        return {"error": (stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_size(
    types: Sequence[str],
    size: int,
    reps: int,
    peers: Sequence[str],
    seed: int,
    min_effect_size: float | None,
    timeout: float,
) -> dict[str, Any]:
    """Run every library on every dataset of one size; return the cells and peer metadata."""
    processes = {library: start_peer(library, types, size, reps, seed) for library in peers}
    start = time.perf_counter()
    cells = driftline_cells(types, size, reps, seed, min_effect_size)
    seconds = {"driftline": round(time.perf_counter() - start, 2)}
    versions: dict[str, str] = {}
    errors: dict[str, str] = {}
    for library, process in processes.items():
        result = finish_peer(process, timeout)
        if "error" in result:
            errors[library] = result["error"]
            continue
        versions[library] = result["version"]
        seconds[library] = result["seconds"]
        verdicts = {(c["type"], c["shift_index"]): c["flags"] for c in result["cells"]}
        for cell in cells:
            flags = verdicts[(cell["type"], cell["shift_index"])]
            cell[library] = {"flags": flags, "share": sum(flags) / len(flags)}
    for cell in cells:
        cell["n"] = size
        cell["reps"] = reps
    return {"cells": cells, "seconds": seconds, "versions": versions, "errors": errors}


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def cell_text(cell: dict[str, Any], peers: Sequence[str]) -> str:
    """``dl x% / ev y% / nm z% / ad w% · e=...`` for one cell."""
    parts = [f"dl {_pct(cell['share'])}"]
    if "min_effect_share" in cell:
        parts.append(f"dl+e {_pct(cell['min_effect_share'])}")
    for library in peers:
        share = cell[library]["share"] if library in cell else None
        parts.append(f"{SHORT[library]} {_pct(share)}")
    return " / ".join(parts) + f" · e={cell['median_effect_size']:.3g}"


def tables(cells: Sequence[dict[str, Any]], peers: Sequence[str]) -> str:
    """One markdown table per feature type: rows shift, columns size."""
    sizes = sorted({c["n"] for c in cells})
    reps = {c["n"]: c["reps"] for c in cells}
    by_key = {(c["type"], c["shift_index"], c["n"]): c for c in cells}
    out = []
    for kind in dict.fromkeys(c["type"] for c in cells):
        unit = "TV" if kind == "categorical" else "sd"
        method = next(c["method"] for c in cells if c["type"] == kind)
        out.append(f"\n**{kind}** ({TYPES[kind]}; driftline method `{method}`)\n")
        header = [f"shift ({unit})"] + [f"n={n:,} ({reps[n]} reps)" for n in sizes]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for shift_index, shift in enumerate(shifts_of(kind)):
            row = [f"{shift:g}"]
            for n in sizes:
                cell = by_key.get((kind, shift_index, n))
                row.append("" if cell is None else cell_text(cell, peers))
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def power_limit(cells: Sequence[dict[str, Any]]) -> float | None:
    """Largest effect-size threshold keeping >= 95% flagged at the material shift, n >= 5,000.

    ``None`` when the defaults themselves miss that target in some cell.
    """
    limits = []
    for cell in cells:
        if cell["shift_index"] != MATERIAL_INDEX or cell["n"] < POWER_MIN_ROWS:
            continue
        flagged = sorted(
            (e for f, e in zip(cell["flags"], cell["effect_sizes"], strict=True) if f),
            reverse=True,
        )
        need = math.ceil(0.95 * cell["reps"])
        if len(flagged) < need:
            return None
        limits.append(flagged[need - 1])
    return min(limits) if limits else None


def quiet_limit(cells: Sequence[dict[str, Any]], shift_index: int) -> float:
    """Smallest effect-size threshold keeping shift ``shift_index`` flagged <= 5% at every n."""
    limit = 0.0
    for cell in cells:
        if cell["shift_index"] != shift_index:
            continue
        flagged = sorted(
            (e for f, e in zip(cell["flags"], cell["effect_sizes"], strict=True) if f),
            reverse=True,
        )
        allowed = math.floor(0.05 * cell["reps"])
        if len(flagged) > allowed:
            limit = max(limit, math.nextafter(flagged[allowed], math.inf))
    return limit


def thresholds(cells: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per type: the effect-size window that would meet the targets, for each materiality cut.

    For each shift below the material one (0.2 sd / TV 0.1), ``quiet`` is the
    smallest ``min_effect_size`` that flags that shift in <= 5% of repetitions
    at every size; ``power`` is the largest one still flagging the material shift
    in >= 95% of repetitions at every size >= 5,000. A cut is feasible when
    ``quiet <= power``.
    """
    out: dict[str, dict[str, Any]] = {}
    for kind in dict.fromkeys(c["type"] for c in cells):
        mine = [c for c in cells if c["type"] == kind]
        quiet = {f"{shifts_of(kind)[i]:g}": quiet_limit(mine, i) for i in range(1, MATERIAL_INDEX)}
        measured = any(c["n"] >= POWER_MIN_ROWS for c in mine)
        power = power_limit(mine)
        note = "no size >= 5,000" if not measured else "missed at defaults" if power is None else ""
        out[kind] = {"method": mine[0]["method"], "power": power, "power_note": note}
        out[kind]["quiet"] = quiet
    return out


def thresholds_text(found: dict[str, dict[str, Any]]) -> str:
    """Markdown table of :func:`thresholds`."""
    header = ["type", "method", "power limit (0.2 sd / TV 0.1)", "quiet limit per shift below it"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for kind, t in found.items():
        power = t["power_note"] if t["power"] is None else f"{t['power']:.4f}"
        quiet = ", ".join(f"{s}: {v:.4f}" for s, v in t["quiet"].items())
        lines.append("| " + " | ".join([kind, t["method"], power, quiet]) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--reps", type=int, default=20, help="repetitions per cell")
    parser.add_argument(
        "--large-reps", type=int, default=5, help="repetitions cap from 1,000,000 rows"
    )
    parser.add_argument("--quick", action="store_true", help="sizes 500 5000, 10 reps")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    parser.add_argument("--peer-max-size", type=int, default=LARGE)
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    parser.add_argument("--min-effect-size", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per peer batch")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/calibration.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps = [500, 5_000], 10
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peers and not PEERS_PYTHON.exists():
        sys.exit(f"{PEERS_PYTHON} not found: run benchmarks/setup_peers.sh or pass --peers")
    cells: list[dict[str, Any]] = []
    runs = {}
    for size in args.sizes:
        reps = reps_for(size, args.reps, args.large_reps)
        peers = args.peers if size <= args.peer_max_size else []
        print(f"n={size:,}: {reps} reps, peers {peers or 'none'}", file=sys.stderr, flush=True)
        run = run_size(args.types, size, reps, peers, args.seed, args.min_effect_size, args.timeout)
        print(f"  seconds {run['seconds']} errors {run['errors']}", file=sys.stderr, flush=True)
        cells += run["cells"]
        runs[str(size)] = {k: run[k] for k in ("seconds", "versions", "errors")}
    text = tables(cells, args.peers)
    found = thresholds(cells)
    print(text)
    print("\nEffect-size thresholds (min_effect_size) that would meet the targets:\n")
    print(thresholds_text(found))
    result = {
        "config": {
            "sizes": args.sizes,
            "reps": args.reps,
            "large_reps": args.large_reps,
            "peers": args.peers,
            "peer_max_size": args.peer_max_size,
            "types": {t: TYPES[t] for t in args.types},
            "min_effect_size": args.min_effect_size,
            "seed": args.seed,
            "python": platform.python_version(),
        },
        "runs": runs,
        "thresholds": found,
        "cells": cells,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Calibration study: how often each library flags a feature, by sample size and shift size.

Usage (the peers need ``.venv-peers``, see ``benchmarks/setup_peers.sh``)::

    .venv/bin/python -m benchmarks.calibration [--sizes 500 5000 50000 1000000 10000000]
        [--reps 20] [--large-reps 5] [--driftline-reps 200] [--driftline-large-reps 20]
        [--quick] [--peers evidently nannyml alibi] [--types normal ...]
        [--peer-max-size 1000000] [--seed 0] [--timeout 7200]
        [--output benchmarks/results/calibration.json]

The grid: every feature type of :data:`benchmarks.peers.calibrate_peers.TYPES`
(normal, skewed, integer counts, rounded-to-integer, zero-inflated, a 5-level
integer column, a categorical) x every ``--sizes`` (rows per side) x the type's
shift grid (0, 0.02, 0.05, 0.1, 0.2, 0.5 sd for the numeric types; total
variation 0, 0.01, 0.03, 0.05, 0.1, 0.2 for the categorical one) x seeded
repetitions. Each repetition is its own one-column reference/current pair
(:func:`~benchmarks.peers.calibrate_peers.make_cell_pair`), so every library
sees one test per dataset and no multiple-testing correction is involved: the
share at shift 0 is the per-feature false-alarm rate.

* driftline runs in this process at its defaults, ``compare_frames(reference,
  current, DriftSettings())`` (the sketch path, what the service computes),
  ``--driftline-reps`` times per cell (``--driftline-large-reps`` from
  1,000,000 rows, a quarter of that from 10,000,000). Per repetition it keeps
  the decision, whether the test alone fired ("test" in the tables), the
  effect size, its lower bound and the p-value.
* each peer runs in ONE subprocess per size in ``.venv-peers``
  (``benchmarks/peers/calibrate_peers.py``) on the first ``--reps`` datasets
  (``--large-reps`` from 1,000,000 rows) of every cell, regenerated from the
  same seeds, at its defaults exactly as the side-by-side benchmark runs it
  (Evidently ``DataDriftPreset``; NannyML ``UnivariateDriftCalculator`` KS/chi2
  with its default 10-chunk chunker, a feature flagged when any chunk alerts;
  Alibi Detect ``TabularDrift``, p_val 0.05). The peer processes of one size run
  concurrently with driftline. Their verdicts do not depend on driftline's code
  and are kept in :data:`PEER_CACHE`; a re-run reuses them. Peers are skipped
  above ``--peer-max-size`` (default 1,000,000: 10,000,000 rows is driftline's
  sketch path only).

Every cell is held to one target (:func:`role`): no shift, flagged <= alpha;
a true effect (:func:`true_effect`) below driftline's materiality threshold,
flagged <= 5% at every n; 0.2 sd / TV 0.1 and more, flagged >= 95% from 5,000
rows. It prints one markdown table per feature type, a scorecard of every
library against those targets with the cells each misses, and per type the
largest ``min_effect_size`` that keeps the power target (the default is the
smallest, rounded down), and writes everything, per-repetition values included,
to ``--output``. ``--quick`` is sizes 500 and 5,000 with 50 (peers 10) repetitions.
"""

from __future__ import annotations

import argparse
import hashlib
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
from scipy import stats

from benchmarks.peers.calibrate_peers import TYPES, make_cell_pair, shifts_of
from detectors.drift import DEFAULT_MIN_EFFECT_SIZE, DriftSettings, compare_frames

ROOT = Path(__file__).resolve().parents[1]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
PEER_SCRIPT = "benchmarks/peers/calibrate_peers.py"
#: Peer verdicts do not depend on driftline's code: each batch is kept here, keyed by the
#: library, size, repetitions, seed, types and a hash of the data generator, and reused.
PEER_CACHE = ROOT / "benchmarks/results/calibration_peers"
PEERS = ("evidently", "nannyml", "alibi")
SHORT = {"driftline": "dl", "evidently": "ev", "nannyml": "nm", "alibi": "ad"}
DEFAULT_SIZES = (500, 5_000, 50_000, 1_000_000)
LARGE = 1_000_000
HUGE = 10_000_000
#: Shift index from which the study wants >= 95% flagged at n >= 5,000 (0.2 sd / TV 0.1).
MATERIAL_INDEX = 4
POWER_MIN_ROWS = 5_000


def reps_for(size: int, reps: int, large_reps: int) -> int:
    """Repetitions per cell at ``size``: fewer from 1,000,000 rows, a quarter of those from 10M."""
    if size >= HUGE:
        return max(1, min(reps, large_reps) // 4)
    return min(reps, large_reps) if size >= LARGE else reps


def true_effect(kind: str, shift: float) -> float:
    """Return the population effect size of a ``(type, shift)`` cell (what the samples estimate).

    The KS distance between the reference and shifted distributions (numeric
    types, and ``levels5`` in value order), the total variation distance for
    the categorical type; from the closed-form CDFs of the generators in
    :mod:`benchmarks.peers.calibrate_peers`.
    """
    if shift == 0:
        return 0.0
    if kind == "normal":
        return float(2 * stats.norm.cdf(shift / 2) - 1)
    if kind == "skewed":
        moved = shift * float(np.sqrt((np.e - 1.0) * np.e))
        grid = np.linspace(1e-6, 20.0, 400_001)
        return float(np.max(stats.lognorm.cdf(grid, 1.0) - stats.lognorm.cdf(grid - moved, 1.0)))
    if kind == "counts":
        k = np.arange(0, 200)
        lam = 40.0
        return float(
            np.max(
                np.abs(stats.poisson.cdf(k, lam) - stats.poisson.cdf(k, lam + shift * np.sqrt(lam)))
            )
        )
    if kind == "rounded":
        k = np.arange(-60, 61) + 0.5
        return float(np.max(np.abs(stats.norm.cdf(k, 0, 5) - stats.norm.cdf(k, 5 * shift, 5))))
    if kind == "zero_inflated":
        return float(0.4 * (1 - np.exp(-2.0 * shift)))
    if kind == "levels5":
        cuts = np.array([-1.5, -0.5, 0.5, 1.5])
        return float(np.max(stats.norm.cdf(cuts) - stats.norm.cdf(cuts - shift)))
    if kind == "categorical":
        return float(shift)
    raise ValueError(f"unknown feature type {kind!r}")


def role(kind: str, shift_index: int, min_effect_size: float = DEFAULT_MIN_EFFECT_SIZE) -> str:
    """Return the target a cell is held to: ``null``, ``below``, ``material`` or ``between``.

    ``null``: no shift (flagged share <= alpha). ``below``: the true effect is
    below ``min_effect_size`` (flagged <= 5% at every n). ``material``: 0.2 sd /
    TV 0.1 and more (flagged >= 95% at n >= 5,000). ``between``: no target.
    """
    if shift_index == 0:
        return "null"
    if shift_index >= MATERIAL_INDEX:
        return "material"
    if true_effect(kind, shifts_of(kind)[shift_index]) < min_effect_size:
        return "below"
    return "between"


def driftline_cells(
    types: Sequence[str], size: int, reps: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Run driftline at defaults on every ``(type, shift, rep)`` dataset of one size.

    Per repetition it keeps the decision (``flags``), whether the test alone
    fired (``detectable_flags``), the effect size, its lower bound and the
    p-value.
    """
    default = DriftSettings()
    cells = []
    for kind in types:
        for shift_index, shift in enumerate(shifts_of(kind)):
            flags, detectable, effects, lowers, p_values = [], [], [], [], []
            method = ""
            for rep in range(reps):
                reference, current = make_cell_pair(kind, size, shift_index, rep, seed)
                feature = compare_frames(reference, current, default).features[0]
                method = feature.method
                flags.append(feature.drift)
                detectable.append(feature.detectable)
                effects.append(float(feature.effect_size))
                lowers.append(float(feature.effect_size_lower))
                p_values.append(feature.p_value)
            cells.append(
                {
                    "type": kind,
                    "shift_index": shift_index,
                    "shift": shift,
                    "true_effect": true_effect(kind, shift),
                    "role": role(kind, shift_index),
                    "method": method,
                    "flags": flags,
                    "share": sum(flags) / reps,
                    "detectable_flags": detectable,
                    "detectable_share": sum(detectable) / reps,
                    "effect_sizes": effects,
                    "effect_lowers": lowers,
                    "median_effect_size": float(np.median(effects)),
                    "p_values": p_values,
                }
            )
    return cells


def peer_cache_path(library: str, types: Sequence[str], size: int, reps: int, seed: int) -> Path:
    """Return where one peer batch's verdicts are kept (see :data:`PEER_CACHE`)."""
    generator = (ROOT / PEER_SCRIPT).read_bytes()
    key = hashlib.sha256(generator + " ".join(types).encode()).hexdigest()[:12]
    return PEER_CACHE / f"{library}-n{size}-r{reps}-s{seed}-{key}.json"


def start_peer(
    library: str, types: Sequence[str], size: int, reps: int, seed: int
) -> subprocess.Popen[str] | Path:
    """Start one peer's batch for one size in ``.venv-peers``, or return its cached result."""
    cached = peer_cache_path(library, types, size, reps, seed)
    if cached.is_file():
        return cached
    command = [str(PEERS_PYTHON), PEER_SCRIPT, "--library", library, "--size", str(size)]
    command += ["--reps", str(reps), "--seed", str(seed), "--types", *types]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_peer(
    process: subprocess.Popen[str] | Path, timeout: float, cache: Path | None = None
) -> dict[str, Any]:
    """Wait for a peer batch; return its JSON result (kept in ``cache``) or an ``error`` entry."""
    if isinstance(process, Path):
        cached: dict[str, Any] = json.loads(process.read_text(encoding="utf-8"))
        return cached
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
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(lines[-1] + "\n", encoding="utf-8")
    return result


def run_size(
    types: Sequence[str],
    size: int,
    reps: int,
    peers: Sequence[str],
    seed: int,
    timeout: float,
    peer_reps: int | None = None,
) -> dict[str, Any]:
    """Run every library on every dataset of one size; return the cells and peer metadata.

    Peers run ``peer_reps`` repetitions (default ``reps``), the first ones of
    driftline's: the same datasets.
    """
    peer_reps = reps if peer_reps is None else min(peer_reps, reps)
    processes = {library: start_peer(library, types, size, peer_reps, seed) for library in peers}
    start = time.perf_counter()
    cells = driftline_cells(types, size, reps, seed)
    seconds = {"driftline": round(time.perf_counter() - start, 2)}
    versions: dict[str, str] = {}
    errors: dict[str, str] = {}
    for library, process in processes.items():
        cache = peer_cache_path(library, types, size, peer_reps, seed)
        result = finish_peer(process, timeout, cache)
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
    """``dl x% (det y%) / ev y% / nm z% / ad w%`` for one cell."""
    parts = [f"**dl {_pct(cell['share'])}** (test {_pct(cell['detectable_share'])})"]
    for library in peers:
        share = cell[library]["share"] if library in cell else None
        parts.append(f"{SHORT[library]} {_pct(share)}")
    return " / ".join(parts)


def tables(cells: Sequence[dict[str, Any]], peers: Sequence[str]) -> str:
    """One markdown table per feature type: rows shift (with its true effect), columns size."""
    sizes = sorted({c["n"] for c in cells})
    reps = {c["n"]: (c["reps"], c.get("peer_reps")) for c in cells}
    by_key = {(c["type"], c["shift_index"], c["n"]): c for c in cells}
    out = []
    for kind in dict.fromkeys(c["type"] for c in cells):
        unit = "TV" if kind == "categorical" else "sd"
        method = next(c["method"] for c in cells if c["type"] == kind)
        out.append(f"\n**{kind}** ({TYPES[kind]}; driftline method `{method}`)\n")
        header = [f"shift ({unit}) · true effect · target"]
        for n in sizes:
            dl_reps, peer_reps = reps[n]
            peer_note = f", peers {peer_reps}" if peer_reps else ""
            header.append(f"n={n:,} ({dl_reps} reps{peer_note})")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for shift_index, shift in enumerate(shifts_of(kind)):
            first = next(c for c in cells if c["type"] == kind and c["shift_index"] == shift_index)
            target = TARGET_TEXT[first["role"]]
            row = [f"{shift:g} · {first['true_effect']:.3f} · {target}"]
            for n in sizes:
                cell = by_key.get((kind, shift_index, n))
                row.append("" if cell is None else cell_text(cell, peers))
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


#: How each role's target reads in the tables.
TARGET_TEXT = {
    "null": "<= alpha",
    "below": "<= 5%",
    "material": ">= 95% from 5,000",
    "between": "-",
}


def _share(cell: dict[str, Any], library: str) -> float | None:
    if library == "driftline":
        return float(cell["share"])
    return float(cell[library]["share"]) if library in cell else None


def scorecard(
    cells: Sequence[dict[str, Any]], libraries: Sequence[str], alpha: float = 0.05
) -> list[dict[str, Any]]:
    """Per library: its worst cell on each side of the study's targets, and the cells it misses.

    ``null``: highest flagged share with no shift; ``below``: highest share on
    shifts whose true effect is below driftline's materiality threshold;
    ``material``: lowest share on 0.2 sd / TV 0.1 and more from 5,000 rows.
    """
    rows = []
    for library in libraries:
        worst: dict[str, float | None] = {"null": None, "below": None, "material": None}
        misses = []
        for cell in cells:
            share = _share(cell, library)
            kind = cell["role"]
            if share is None or kind == "between":
                continue
            if kind == "material" and cell["n"] < POWER_MIN_ROWS:
                continue
            known = worst[kind]
            if kind == "material":
                worst[kind] = share if known is None else min(known, share)
                missed = share < 0.95
            else:
                worst[kind] = share if known is None else max(known, share)
                missed = share > (alpha if kind == "null" else 0.05)
            if missed:
                misses.append(f"{cell['type']} {cell['shift']:g} n={cell['n']:,}: {_pct(share)}")
        rows.append({"library": library, **worst, "misses": misses})
    return rows


def scorecard_text(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`scorecard`."""
    header = [
        "library",
        "worst share, no shift (target <= 5%)",
        "worst share, effect below 0.03 (target <= 5%)",
        "lowest share, >= 0.2 sd / TV 0.1, n >= 5,000 (target >= 95%)",
        "cells missed",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["library"], _pct(r["null"]), _pct(r["below"]), _pct(r["material"])]
        cells.append(str(len(r["misses"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def power_limits(cells: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    """Per type: the largest ``min_effect_size`` keeping >= 95% flagged at 0.2 sd, n >= 5,000.

    Read off driftline's detectable repetitions and their effect-size lower
    bounds (at the default confidence); the default threshold is the smallest
    of these, rounded down. None when no size of 5,000 or more was run, or
    when the test alone misses the target.
    """
    out: dict[str, float | None] = {}
    for kind in dict.fromkeys(c["type"] for c in cells):
        limits = []
        for cell in cells:
            if cell["type"] != kind or cell["shift_index"] != MATERIAL_INDEX:
                continue
            if cell["n"] < POWER_MIN_ROWS:
                continue
            passing = sorted(
                (
                    low
                    for d, low in zip(cell["detectable_flags"], cell["effect_lowers"], strict=True)
                    if d
                ),
                reverse=True,
            )
            need = math.ceil(0.95 * cell["reps"])
            limits.append(passing[need - 1] if len(passing) >= need else -1.0)
        out[kind] = None if not limits or min(limits) < 0 else min(limits)
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--reps", type=int, default=20, help="peer repetitions per cell")
    parser.add_argument(
        "--large-reps", type=int, default=5, help="peer repetitions cap from 1,000,000 rows"
    )
    parser.add_argument(
        "--driftline-reps", type=int, default=200, help="driftline repetitions per cell"
    )
    parser.add_argument(
        "--driftline-large-reps",
        type=int,
        default=20,
        help="driftline repetitions cap from 1,000,000 rows",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 500 5000, 10/50 reps")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS)
    parser.add_argument("--peer-max-size", type=int, default=LARGE)
    parser.add_argument("--types", nargs="+", default=list(TYPES), choices=list(TYPES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per peer batch")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/calibration.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.driftline_reps = [500, 5_000], 10, 50
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.peers and not PEERS_PYTHON.exists():
        sys.exit(f"{PEERS_PYTHON} not found: run benchmarks/setup_peers.sh or pass --peers")
    cells: list[dict[str, Any]] = []
    runs = {}
    for size in args.sizes:
        reps = reps_for(size, args.driftline_reps, args.driftline_large_reps)
        peers = args.peers if size <= args.peer_max_size else []
        peer_reps = reps_for(size, args.reps, args.large_reps) if peers else None
        print(
            f"n={size:,}: driftline {reps} reps, peers {peers or 'none'} {peer_reps or ''}",
            file=sys.stderr,
            flush=True,
        )
        run = run_size(args.types, size, reps, peers, args.seed, args.timeout, peer_reps)
        print(f"  seconds {run['seconds']} errors {run['errors']}", file=sys.stderr, flush=True)
        for cell in run["cells"]:
            cell["peer_reps"] = peer_reps
        cells += run["cells"]
        runs[str(size)] = {k: run[k] for k in ("seconds", "versions", "errors")}
    libraries = ["driftline", *args.peers]
    card = scorecard(cells, libraries)
    limits = power_limits(cells)
    print(tables(cells, args.peers))
    print("\nEvery library against the targets (cells where the library ran):\n")
    print(scorecard_text(card))
    for row in card:
        if row["misses"]:
            print(f"\n{row['library']} misses: " + "; ".join(row["misses"]))
    print(
        "\nLargest min_effect_size keeping >= 95% at 0.2 sd / TV 0.1 from 5,000 rows: "
        + ", ".join(f"{k} {'-' if v is None else f'{v:.4f}'}" for k, v in limits.items())
        + f" (default {DEFAULT_MIN_EFFECT_SIZE})"
    )
    result = {
        "config": {
            "sizes": args.sizes,
            "reps": args.reps,
            "large_reps": args.large_reps,
            "driftline_reps": args.driftline_reps,
            "driftline_large_reps": args.driftline_large_reps,
            "peers": args.peers,
            "peer_max_size": args.peer_max_size,
            "types": {t: TYPES[t] for t in args.types},
            "min_effect_size": DEFAULT_MIN_EFFECT_SIZE,
            "seed": args.seed,
            "python": platform.python_version(),
        },
        "runs": runs,
        "scorecard": card,
        "power_limits": limits,
        "cells": cells,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Shared harness for the peer-library runners.

Each runner supplies two callables: ``warm_up`` imports the library (untimed) and
returns its version; ``detect`` turns the ``(reference, current)`` frames into a
:class:`Detection`. :func:`run` does everything else the same way for every peer:
parse ``--rows``/``--seed``, generate the seeded data (untimed), time ``detect``
with :func:`time.perf_counter`, read the process's memory, and print exactly one
JSON line to stdout. Everything the libraries print or log goes to stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import pandas as pd

from benchmarks.data import make_pair

# Keep the peers from phoning home during the run: a blocked network call would
# be timed as library work. Both are read when the library would send, not at import.
os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")  # NannyML usage logging
os.environ.setdefault("DO_NOT_TRACK", "1")  # Evidently telemetry


class Detection(NamedTuple):
    """What a peer library concluded about one ``(reference, current)`` pair."""

    flagged: list[str]
    """Names of the features the library reports as drifted."""
    dataset_drift: bool | None
    """The library's dataset-level verdict, or None when it has none."""


def current_rss_mb() -> float:
    """Return this process's resident set size now, in MB (Linux ``/proc``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024  # the line reads "VmRSS:   12345 kB"
    raise RuntimeError("VmRSS not found in /proc/self/status")


def reset_peak_rss() -> None:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux ``clear_refs``).

    Called after the data exists, so the peak reported is the library's work
    on the data, not the data generator's temporaries.
    """
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def peak_rss_mb() -> float:
    """Return this process's peak resident set size since the last reset, in MB (``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmHWM not found in /proc/self/status")


def parse_args(library: str) -> argparse.Namespace:
    """Parse the runner CLI shared by all peers: ``--rows N --seed S``."""
    parser = argparse.ArgumentParser(
        description=f"Time {library} on make_pair(rows, seed) and print one JSON line."
    )
    parser.add_argument("--rows", type=int, required=True, help="rows in reference and in current")
    parser.add_argument("--seed", type=int, default=0, help="seed passed to make_pair")
    return parser.parse_args()


def run(
    library: str,
    warm_up: Callable[[], str],
    detect: Callable[[pd.DataFrame, pd.DataFrame], Detection],
) -> None:
    """Benchmark one peer library and print its result as a single JSON line.

    The JSON holds ``baseline_rss_mb`` (after the warm-up import, before the data
    exists), ``data_mb`` (after data generation, i.e. where the timed part starts)
    and ``peak_rss_mb`` (the process's peak during the timed part: the kernel's
    peak mark is reset once the data exists), so ``peak_rss_mb - data_mb`` is what
    the library itself added on top of the data.
    """
    args = parse_args(library)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        version = warm_up()
        baseline_mb = current_rss_mb()
        reference, current = make_pair(args.rows, args.seed)
        data_mb = current_rss_mb()
        reset_peak_rss()
        start = time.perf_counter()
        detection = detect(reference, current)
        seconds = time.perf_counter() - start
    result = {
        "library": library,
        "version": version,
        "rows": args.rows,
        "seconds": round(seconds, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "baseline_rss_mb": round(baseline_mb, 1),
        "data_mb": round(data_mb, 1),
        "flagged": sorted(detection.flagged),
        "dataset_drift": detection.dataset_drift,
    }
    print(json.dumps(result), flush=True)

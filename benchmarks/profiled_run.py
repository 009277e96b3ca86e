"""``driftline run`` with every thread under cProfile; the merged stats are written at exit.

    python -m benchmarks.profiled_run OUT.prof run --config FILE

cProfile profiles only the thread that enables it, and the service's work
happens on its ingest, scheduler and HTTP threads: each new thread enables
its own profiler (``threading.setprofile``), and at exit (the command line
turns SIGTERM into ``SystemExit``) they are merged into ``OUT.prof`` (read
it with ``python -m pstats``). Used by
``benchmarks.scale --profile``; expect the process to run about 1.5x slower.
"""

from __future__ import annotations

import atexit
import cProfile
import pstats
import sys
import threading
from typing import Any

_PROFILES: list[cProfile.Profile] = []


def _start_in_thread(*_args: Any) -> None:
    """The first profile event of a new thread: give the thread its own profiler."""
    sys.setprofile(None)
    profile = cProfile.Profile()
    _PROFILES.append(profile)
    profile.enable()


def _dump(path: str) -> None:
    for profile in _PROFILES:
        profile.disable()
    stats = pstats.Stats(_PROFILES[0])
    for profile in _PROFILES[1:]:
        try:
            stats.add(profile)
        except TypeError:  # a profiler that recorded nothing
            continue
    stats.dump_stats(path)


def main() -> None:
    """Run the driftline command line in ``sys.argv[2:]``, profiled; dump the stats at exit."""
    path = sys.argv[1]
    threading.setprofile(_start_in_thread)
    _start_in_thread()

    atexit.register(_dump, path)
    from monitor.cli import main as cli

    sys.argv = ["driftline", *sys.argv[2:]]
    cli()


if __name__ == "__main__":
    main()

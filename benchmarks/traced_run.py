"""``driftline run`` under tracemalloc: what the process's Python heap grows by, written as it runs.

    python -m benchmarks.traced_run OUT.txt INTERVAL run --config FILE

After INTERVAL seconds the first snapshot (the baseline) is taken; every
INTERVAL seconds after it, ``OUT.txt`` is rewritten with the traced size,
the 25 source lines whose allocations grew most since the baseline, and the
object types whose live count grew most (``gc.get_objects``). Used by
``benchmarks.scale --trace-memory`` to find what makes RSS grow; tracemalloc
slows the process down (one frame per allocation is kept to limit that).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path


def _types() -> Counter[str]:
    """Return the live objects tracked by the collector, counted by type name."""
    return Counter(type(o).__name__ for o in gc.get_objects())


def _watch(path: Path, interval: float) -> None:
    """Thread body: take the baseline, then rewrite ``path`` with the growth every ``interval``."""
    time.sleep(interval)
    baseline = tracemalloc.take_snapshot()
    types0 = _types()
    started = time.time()
    while True:
        time.sleep(interval)
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        grown = snapshot.compare_to(baseline, "lineno")[:25]
        types = _types()
        growth = Counter({k: types[k] - types0.get(k, 0) for k in types})
        lines = [
            f"after {time.time() - started:.0f} s past the baseline: traced {current / 1e6:.1f} MB"
            f" (peak {peak / 1e6:.1f} MB)",
            "top growth by line:",
            *(str(stat) for stat in grown),
            "top growth by object type (count):",
            *(f"  {name}: {count:+d}" for name, count in growth.most_common(15)),
        ]
        path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Run the driftline command line in ``sys.argv[3:]`` with the heap watched."""
    path, interval = Path(sys.argv[1]), float(sys.argv[2])
    tracemalloc.start(1)
    threading.Thread(target=_watch, args=(path, interval), daemon=True).start()
    from monitor.cli import main as cli

    sys.argv = ["driftline", *sys.argv[3:]]
    cli()


if __name__ == "__main__":
    main()

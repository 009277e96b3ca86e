"""Worker of the multi-process claim race; a module of its own so spawned children import little."""

from __future__ import annotations

from typing import Any

from monitor.store import Store, create_engine


def claim_all(url: str, starts: list[float], owner: str, barrier: Any, results: Any) -> None:
    """Try to claim every window in ``starts``; put ``(owner, won starts)`` on ``results``."""
    store = Store(create_engine(url))
    try:
        store.ping()  # connect before the start line, so the race is on the claims
        barrier.wait(timeout=30)
        won = [s for s in starts if store.claim_window("race", s, s + 60.0, owner, 3600.0)]
        results.put((owner, won))
    finally:
        store.close()

"""A clock the tests set by hand, injected into the Store instead of ``time.time``."""

from __future__ import annotations


class FakeClock:
    """A settable clock: ``clock()`` returns ``now``; tests move it with :meth:`advance`."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by ``seconds``."""
        self.now += seconds

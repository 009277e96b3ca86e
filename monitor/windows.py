"""Event-time windows, watermarks and allowed lateness: pure logic, no I/O.

Windows are half-open intervals ``[start, start + size)`` aligned to the epoch
(time 0). Tumbling windows start every ``size`` seconds; hopping windows start
every ``hop`` seconds and overlap, so one event belongs to several of them.

>>> spec = WindowSpec(size_s=60.0, hop_s=30.0)
>>> spec.windows_for(75.0)
[(30.0, 90.0), (60.0, 120.0)]
>>> WindowSpec(size_s=60.0).windows_for(60.0)
[(60.0, 120.0)]

A :class:`Watermarks` object follows how far each partition's event time has
got; a window is *due* once its end is at or before the watermark, and a record
is *late* once every window containing it is due. Time is read from an
injected clock, so tests drive it instead of sleeping:

>>> now = [1000.0]
>>> marks = Watermarks(WindowSpec(60.0, allowed_lateness_s=10.0), clock=lambda: now[0])
>>> marks.observe(("predictions", 0), 130.0)
>>> marks.observe(("predictions", 1), 75.0)
>>> marks.watermark()  # min(130, 75) - 10
65.0
>>> marks.due(60.0), marks.is_late(59.0), marks.is_late(60.0)
(True, True, False)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

__all__ = ["PartitionProgress", "Watermarks", "WindowSpec", "parse_duration"]

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_DURATION_HELP = (
    "expected a number of seconds or a number followed by ms, s, m, h or d, "
    "e.g. '250ms', '30s', '5m', '1h', '1d'"
)


def parse_duration(value: str | float) -> float:
    """Return the duration ``value`` in seconds.

    ``value`` is a non-negative number of seconds, or a string such as
    ``"250ms"``, ``"30s"``, ``"5m"``, ``"1.5h"`` or ``"1d"`` (a bare numeric string
    is seconds too). Raises ``ValueError`` saying what is accepted otherwise.

    >>> parse_duration("5m"), parse_duration("250ms"), parse_duration(90)
    (300.0, 0.25, 90.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]
    else:
        raise ValueError(f"invalid duration {value!r}: {_DURATION_HELP}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be finite and not negative")
    return seconds


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """The shape of a model's windows: ``size_s`` long, starting every ``hop_s`` seconds.

    ``hop_s=None`` means tumbling windows (``hop_s == size_s``). Records are
    still accepted up to ``allowed_lateness_s`` seconds of event time after a
    window's end. Invalid values raise ``ValueError`` naming the parameter.
    """

    size_s: float
    hop_s: float | None = None
    allowed_lateness_s: float = 0.0

    def __post_init__(self) -> None:
        if not _finite_number(self.size_s) or self.size_s <= 0:
            raise ValueError(f"size_s must be a finite number > 0, got {self.size_s!r}")
        if self.hop_s is not None and (
            not _finite_number(self.hop_s) or not 0 < self.hop_s <= self.size_s
        ):
            raise ValueError(
                f"hop_s must be None (tumbling) or a number with 0 < hop_s <= size_s "
                f"({self.size_s!r}), got {self.hop_s!r}"
            )
        if not _finite_number(self.allowed_lateness_s) or self.allowed_lateness_s < 0:
            raise ValueError(
                f"allowed_lateness_s must be a finite number >= 0, got {self.allowed_lateness_s!r}"
            )

    @property
    def step_s(self) -> float:
        """Return the distance between consecutive window starts (``hop_s``, else ``size_s``)."""
        return self.size_s if self.hop_s is None else self.hop_s

    @property
    def tumbling(self) -> bool:
        """Return whether windows do not overlap (each event is in exactly one)."""
        return self.hop_s is None or self.hop_s == self.size_s

    def windows_for(self, event_time: float) -> list[tuple[float, float]]:
        """Return every window ``(start, end)`` with ``start <= event_time < end``, oldest first."""
        if not _finite_number(event_time):
            raise ValueError(f"event_time must be a finite number, got {event_time!r}")
        step = self.step_s
        k = math.floor(event_time / step)
        # Division rounds: nudge k so that k * step <= event_time < (k + 1) * step holds exactly.
        while k * step > event_time:
            k -= 1
        while (k + 1) * step <= event_time:
            k += 1
        windows = []
        while k * step + self.size_s > event_time:
            start = float(k * step)
            windows.append((start, start + self.size_s))
            k -= 1
        windows.reverse()
        return windows

    def last_end(self, event_time: float) -> float:
        """Return the end of the newest window containing ``event_time``."""
        return self.windows_for(event_time)[-1][1]


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """How far one partition has got: its largest event time, and when it last sent a record."""

    max_event_time: float
    last_record_at: float


class Watermarks:
    """Per-partition event-time progress of one model, and the watermark derived from it.

    ``spec`` gives the allowed lateness and the window shape (for :meth:`is_late`);
    a partition that sent nothing for ``idle_timeout_s`` seconds of wall time
    (read from ``clock``) is idle and does not hold the watermark back.

    Decisions where the design is silent:

    * When every partition with data is idle (traffic stopped), the watermark is
      the *largest* partition watermark, so the last windows still close.
    * The watermark never goes back: a partition that wakes up with old event
      times does not reopen windows already reported due (their results may
      already be stored); its records for those windows count as late.
    """

    def __init__(
        self,
        spec: WindowSpec,
        idle_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _finite_number(idle_timeout_s) or idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be a finite number > 0, got {idle_timeout_s!r}")
        self.spec = spec
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every partition's progress and the watermark reached so far."""
        self._partitions: dict[Hashable, PartitionProgress] = {}
        self._floor: float | None = None

    @classmethod
    def from_progress(
        cls,
        spec: WindowSpec,
        progress: Mapping[Hashable, tuple[float, float]],
        idle_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> Watermarks:
        """Return watermarks started from ``{partition: (max_event_time, last_record_at)}``."""
        marks = cls(spec, idle_timeout_s=idle_timeout_s, clock=clock)
        marks.load(progress)
        return marks

    def load(self, progress: Mapping[Hashable, tuple[float, float]]) -> None:
        """Merge stored ``{partition: (max_event_time, last_record_at)}`` into the known progress.

        Each value only moves forward, so loading progress written by other
        processes (or older copies of our own) never loses what was observed here.
        """
        for partition, (max_event_time, last_record_at) in progress.items():
            self._advance(partition, float(max_event_time), float(last_record_at))

    def observe(self, partition: Hashable, event_time: float) -> None:
        """Record that ``partition`` delivered a record with ``event_time``, now (per the clock)."""
        if not _finite_number(event_time):
            raise ValueError(f"event_time must be a finite number, got {event_time!r}")
        self._advance(partition, float(event_time), self.clock())

    def progress(self) -> dict[Hashable, PartitionProgress]:
        """Return a copy of each partition's progress (what is stored with the offsets)."""
        return dict(self._partitions)

    def watermark(self, idle_timeout_s: float | None = None) -> float | None:
        """Return the event time up to which windows are complete, or None before any data.

        That is the minimum, over partitions not idle for ``idle_timeout_s``
        (default: the one given at construction), of the partition's largest
        event time minus the allowed lateness.
        """
        if not self._partitions:
            return None
        timeout = self.idle_timeout_s if idle_timeout_s is None else idle_timeout_s
        now = self.clock()
        lateness = self.spec.allowed_lateness_s
        marks = [p.max_event_time - lateness for p in self._partitions.values()]
        active = [
            p.max_event_time - lateness
            for p in self._partitions.values()
            if now - p.last_record_at <= timeout
        ]
        current = min(active) if active else max(marks)
        if self._floor is None or current > self._floor:
            self._floor = current
        return self._floor

    def due(self, window_end: float) -> bool:
        """Return whether the window ending at ``window_end`` is complete (end <= watermark)."""
        mark = self.watermark()
        return mark is not None and window_end <= mark

    def is_late(self, event_time: float) -> bool:
        """Return whether every window containing ``event_time`` is already due."""
        return self.due(self.spec.last_end(event_time))

    def _advance(self, partition: Hashable, max_event_time: float, last_record_at: float) -> None:
        known = self._partitions.get(partition)
        if known is not None:
            max_event_time = max(known.max_event_time, max_event_time)
            last_record_at = max(known.last_record_at, last_record_at)
        self._partitions[partition] = PartitionProgress(max_event_time, last_record_at)


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

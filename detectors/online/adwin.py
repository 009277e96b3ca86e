"""ADWIN, adaptive windowing (Bifet & Gavaldà 2007), in its bucketed form ADWIN2.

ADWIN keeps the window ``W`` of values since the start (or the last
detection) summarised in an exponential histogram: row ``i`` holds the sums of
up to ``max_buckets`` consecutive blocks of ``2**i`` values; when a row gets
one block too many, its two oldest blocks merge into one of the next row. Every
``clock`` values, once the window holds more than ``grace_period`` values, ADWIN
tries every block boundary as a cut of ``W`` into an older part ``W0`` (``n0``
values) and a recent part ``W1`` (``n1``), both at least ``min_window_length``
long, and detects a change when the means differ by more than::

    eps = sqrt(2 m sigma2 d) + (2 / 3) d m,
    m = 1 / (n0 - min_window_length + 1) + 1 / (n1 - min_window_length + 1),
    d = ln(2 ln(|W|) / delta),

where ``sigma2`` is the variance of ``W`` (kept exactly by Welford's update).
The cut-off is River's, which uses a Bernstein-type bound in place of the
paper's Hoeffding bound; it suits both 0/1 error streams and real values.

Same parameters, defaults, bucket scheme, cut order and arithmetic as River's
``drift.ADWIN`` (its Rust ``AdaptiveWindowing``), so detection indices are
identical on the same stream (tested on 0/1 and Gaussian streams). As in
River, the window is dropped entirely after a detection (the next update
starts again from an empty window); the paper instead drops only blocks from
the old end until no cut is significant, which keeps the recent part but
reports one change several times. Because nothing is ever dropped from a live
window, the blocks keep only their sums: the per-block variances River stores
serve only that dropping.

Memory: row ``i`` holds at most ``max_buckets`` sums and a window of ``|W|``
values needs at most ``log2(|W|) + 1`` rows, so at most
``max_buckets * (log2(|W|) + 1)`` numbers plus four: 320 with the defaults for
any window shorter than ``2**63`` values.
"""

from __future__ import annotations

import math
from typing import ClassVar

from detectors.online.base import ONLINE_DETECTORS, ChangeDetector, check_int, check_real


@ONLINE_DETECTORS.register
class ADWIN(ChangeDetector):
    """Adaptive windowing: a change in the mean of a 0/1 or real-valued stream.

    Parameters
    ----------
    delta
        Confidence of the cut test, in ``(0, 1)``: smaller gives fewer false alarms
        and later detections.
    clock
        Test for a change every ``clock`` values (1 tests at every value).
    max_buckets
        Blocks of each size kept before the two oldest merge (``M``).
    min_window_length
        Shortest part, on either side of a cut, that the test considers.
    grace_period
        Values the window must exceed before any test.

    Examples
    --------
    The error rate rises from 10% to 40% at index 1000:

    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.4])
    >>> adwin = ADWIN()
    >>> [i for i, e in enumerate(errors) if adwin.update(e)]
    [1055]
    """

    name: ClassVar[str] = "adwin"

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        check_real("delta", delta, low=0.0, high=1.0, low_open=True, high_open=True)
        check_int("clock", clock, 1)
        check_int("max_buckets", max_buckets, 1)
        check_int("min_window_length", min_window_length, 1)
        check_int("grace_period", grace_period, 0)
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        super().__init__()

    def _reset_state(self) -> None:
        # _rows[i] holds sums of blocks of 2**i values, oldest first.
        self._rows: list[list[float]] = [[]]
        self._width = 0
        self._total = 0.0
        self._variance = 0.0  # sum of squared deviations from the window mean
        self._tick = 0

    def update(self, x: float) -> bool:
        """Feed one value; return ``True`` when the window's older and recent parts differ."""
        value = self._start_update(x)
        self._insert(value)
        self._tick += 1
        if self._tick % self.clock or self._width <= self.grace_period:
            return self._finish_update(False)
        return self._finish_update(self._has_cut())

    def _insert(self, value: float) -> None:
        """Add ``value`` to the window's statistics and to the newest row, merging full rows."""
        self._width += 1
        if self._width > 1:
            # River's operation order, so that the rounding (and detections) agree.
            deviation = value - self._total / (self._width - 1)
            self._variance += (self._width - 1) * deviation * deviation / self._width
        self._total += value
        self._rows[0].append(value)
        row = 0
        while len(self._rows[row]) > self.max_buckets:
            if row + 1 == len(self._rows):
                self._rows.append([])
            blocks = self._rows[row]
            self._rows[row + 1].append(blocks[0] + blocks[1])
            del blocks[:2]
            row += 1

    def _has_cut(self) -> bool:
        """Whether some block boundary splits the window into parts with different means."""
        width = self._width
        d = math.log(2.0 * math.log(width) / self.delta)
        variance_per_value = self._variance / width
        shortest = self.min_window_length
        n0, n1 = 0, width
        u0, u1 = 0.0, self._total
        for row in range(len(self._rows) - 1, -1, -1):
            size = 1 << row
            for block in self._rows[row]:
                n0 += size
                n1 -= size
                u0 += block
                u1 -= block
                if n0 < shortest or n1 < shortest:
                    continue  # also skips the empty recent part after the newest block
                m = 1.0 / (n0 - shortest + 1.0) + 1.0 / (n1 - shortest + 1.0)
                epsilon = math.sqrt(2.0 * m * variance_per_value * d) + 2.0 / 3.0 * d * m
                if abs(u0 / n0 - u1 / n1) > epsilon:
                    return True
        return False

    @property
    def width(self) -> int:
        """Number of values in the window (since the start or the last detection)."""
        return self._width

    @property
    def estimation(self) -> float:
        """Mean of the window (0 when it is empty)."""
        return self._total / self._width if self._width else 0.0

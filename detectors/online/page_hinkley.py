"""Page-Hinkley test for a change in the mean of a stream.

With ``m_t`` the running mean of ``x_1..x_t`` (including ``x_t``), the test
keeps two cumulative sums of deviations, faded by ``alpha``::

    U_t = alpha * U_{t-1} + (x_t - m_t) - delta      (grows when the mean rises)
    L_t = alpha * L_{t-1} + (x_t - m_t) + delta      (falls when the mean drops)

and detects a rise when ``U_t - min(U_1..U_t) > threshold``, a drop when
``max(L_1..L_t) - L_t > threshold`` (``mode`` chooses which), once at least
``min_instances`` values have been seen. ``delta`` is the magnitude of change
tolerated; ``threshold`` is on the scale of the data (River's lambda).

Same parameters, defaults and arithmetic as River's ``drift.PageHinkley``, so
detection indices are identical on the same stream (tested). One difference
of representation, not of result: River starts the running minimum of ``U`` at
``+inf`` and the running maximum of ``L`` at ``-1``; this starts both at 0.
The first value always gives ``U_1 = -delta <= 0`` and ``L_1 = delta >= 0``, so
the extremes after it are the same, and the state stays finite for JSON.

Memory: six numbers, whatever the stream length.
"""

from __future__ import annotations

from typing import ClassVar

from detectors.online.base import (
    ONLINE_DETECTORS,
    ChangeDetector,
    check_choice,
    check_int,
    check_real,
)

MODES = ("up", "down", "both")


@ONLINE_DETECTORS.register
class PageHinkley(ChangeDetector):
    """Page-Hinkley test for a rise and/or a drop in the mean.

    Parameters
    ----------
    min_instances
        Values seen (since the start or the last detection) before a change can be detected.
    delta
        Size of change tolerated per value, subtracted from each deviation (``>= 0``).
    threshold
        Detection threshold (lambda), in units of the data (``> 0``).
    alpha
        Fading factor of the cumulative sums, in ``(0, 1]``; 1 means no fading.
    mode
        ``"up"`` for rises, ``"down"`` for drops, ``"both"`` for either.

    Examples
    --------
    A mean shift from 0 to 2 at index 500 is detected 16 values later:

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> stream = np.concatenate([rng.normal(0, 1, 500), rng.normal(2, 1, 500)])
    >>> ph = PageHinkley()
    >>> [i for i, x in enumerate(stream) if ph.update(x)]
    [516]
    """

    name: ClassVar[str] = "page_hinkley"

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
        mode: str = "both",
    ) -> None:
        check_int("min_instances", min_instances, 1)
        check_real("delta", delta, low=0.0)
        check_real("threshold", threshold, low=0.0, low_open=True)
        check_real("alpha", alpha, low=0.0, high=1.0, low_open=True)
        check_choice("mode", mode, MODES)
        self.min_instances = min_instances
        self.delta = delta
        self.threshold = threshold
        self.alpha = alpha
        self.mode = mode
        super().__init__()

    def _reset_state(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._sum_increase = 0.0
        self._sum_decrease = 0.0
        self._min_increase = 0.0
        self._max_decrease = 0.0

    def update(self, x: float) -> bool:
        """Feed one value; return ``True`` when the mean has changed in the monitored direction."""
        value = self._start_update(x)
        self._n += 1
        self._mean += (1.0 / self._n) * (value - self._mean)
        deviation = value - self._mean
        self._sum_increase = self.alpha * self._sum_increase + deviation - self.delta
        self._sum_decrease = self.alpha * self._sum_decrease + deviation + self.delta
        self._min_increase = min(self._min_increase, self._sum_increase)
        self._max_decrease = max(self._max_decrease, self._sum_decrease)
        if self._n < self.min_instances:
            return self._finish_update(False)
        rise = self.mode != "down" and self._sum_increase - self._min_increase > self.threshold
        drop = self.mode != "up" and self._max_decrease - self._sum_decrease > self.threshold
        return self._finish_update(rise or drop)

    @property
    def mean(self) -> float:
        """Running mean of the values since the start or the last detection (0 before any)."""
        return self._mean

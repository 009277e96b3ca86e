"""Two-sided CUSUM (Page 1954) on values standardised by a warm-up.

The first ``min_instances`` values (after the start or a detection) are the
warm-up: they estimate the in-control mean ``m`` and standard deviation ``s``
(sample standard deviation, ``ddof=1``), which then stay fixed. Every later
value is standardised, ``z = (x - m) / s``, and fed to two cumulative sums::

    S+ = max(0, S+ + z - k)      (a rise of the mean)
    S- = max(0, S- - z - k)      (a drop of the mean)

A change is detected when either exceeds ``h``. ``k`` (the allowance) is half
the shift, in standard deviations, that the chart is tuned to detect fastest;
``h`` (the decision threshold) trades false alarms against delay. The textbook
choice ``k = 0.5``, ``h = 5`` (the defaults) targets a one-standard-deviation
shift. A warm-up whose values are all equal has ``s = 0``: any later value
different from ``m`` is then detected at once.

Expected behaviour, when ``m`` and ``s`` are the true values, comes from
Siegmund's approximation of the average run length (:func:`average_run_length`):
with the defaults, about 469 values between false alarms on an in-control
Gaussian stream, and a run length of about 10.3 values (a delay of about 9.3
after the first shifted value) after a one-standard-deviation shift. The tests
check the formula on this detector given a warm-up of exactly mean 0 and
standard deviation 1; River has no CUSUM to compare with.

Estimating ``m`` and ``s`` spreads the run lengths, as some estimates put the
chart close to a false alarm: over 400 in-control runs at the defaults the
median run length was 290 values with known parameters, 291 with a 1,000-value
warm-up, 233 with the default 100 and 152 with 30 (means 453 to 513). A
detection restarts the warm-up, so a false alarm just before a change can make
the warm-up learn the changed level, and the change goes unseen. For long
streams raise ``h``: with ``h = 8``, about 9,560 values between false alarms and
a run length of about 16.3 after a one-standard-deviation shift.

Memory: five numbers, whatever the stream length.
"""

from __future__ import annotations

import math
from typing import ClassVar

from detectors.online.base import ONLINE_DETECTORS, ChangeDetector, check_int, check_real

#: Siegmund's correction added to ``h`` for the overshoot of a normal random walk.
SIEGMUND_OFFSET = 1.166


def average_run_length(k: float, h: float, shift: float = 0.0, two_sided: bool = True) -> float:
    """Return Siegmund's approximation of a CUSUM's average run length on Gaussian data.

    The run length counts values from the (zero) start of the sums up to and
    including the one detected, for a mean ``shift`` in standard deviations
    (0 for the in-control run length between false alarms). Two-sided
    combines the upper and lower charts by ``1/ARL = 1/ARL+ + 1/ARL-``.

    >>> round(average_run_length(0.5, 5.0), 1), round(average_run_length(0.5, 5.0, 1.0), 1)
    (469.1, 10.3)
    """
    b = h + SIEGMUND_OFFSET

    def one_sided(drift: float) -> float:
        if drift == 0:
            return b * b
        return (math.exp(-2 * drift * b) + 2 * drift * b - 1) / (2 * drift * drift)

    upper = one_sided(shift - k)
    if not two_sided:
        return upper
    return 1 / (1 / upper + 1 / one_sided(-shift - k))


@ONLINE_DETECTORS.register
class CUSUM(ChangeDetector):
    """Two-sided CUSUM chart on values standardised by a warm-up.

    Parameters
    ----------
    min_instances
        Length of the warm-up that estimates the mean and standard deviation (``>= 2``).
    k
        Allowance (reference value) in standard deviations (``>= 0``).
    h
        Decision threshold in standard deviations (``> 0``).

    Examples
    --------
    The mean moves by one standard deviation at index 500:

    >>> import numpy as np
    >>> rng = np.random.default_rng(20)
    >>> stream = np.concatenate([rng.normal(10, 2, 500), rng.normal(12, 2, 100)])
    >>> cusum = CUSUM()
    >>> [i for i, x in enumerate(stream) if cusum.update(x)]
    [512]
    """

    name: ClassVar[str] = "cusum"

    def __init__(self, min_instances: int = 100, k: float = 0.5, h: float = 5.0) -> None:
        check_int("min_instances", min_instances, 2)
        check_real("k", k, low=0.0)
        check_real("h", h, low=0.0, low_open=True)
        self.min_instances = min_instances
        self.k = k
        self.h = h
        super().__init__()

    def _reset_state(self) -> None:
        self._n = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._upper = 0.0
        self._lower = 0.0

    def update(self, x: float) -> bool:
        """Feed one value; return ``True`` when either cumulative sum exceeds ``h``."""
        value = self._start_update(x)
        if self._n < self.min_instances:
            self._n += 1
            delta = value - self._mean
            self._mean += delta / self._n
            self._m2 += delta * (value - self._mean)
            return self._finish_update(False)
        std = self.std
        if std > 0:
            z = (value - self._mean) / std
        else:
            # A constant warm-up: any other value is a change, without dividing by zero.
            jump = 0.0 if value == self._mean else self.h + self.k + 1
            z = math.copysign(jump, value - self._mean)
        self._upper = max(0.0, self._upper + z - self.k)
        self._lower = max(0.0, self._lower - z - self.k)
        return self._finish_update(self._upper > self.h or self._lower > self.h)

    @property
    def mean(self) -> float:
        """Warm-up mean (NaN until the warm-up is complete)."""
        return self._mean if self._n >= self.min_instances else math.nan

    @property
    def std(self) -> float:
        """Warm-up sample standard deviation (NaN until the warm-up is complete)."""
        if self._n < self.min_instances:
            return math.nan
        return math.sqrt(max(self._m2, 0.0) / (self._n - 1))

    @property
    def upper(self) -> float:
        """Cumulative sum ``S+`` for a rise, in standard deviations (0 during warm-up)."""
        return self._upper

    @property
    def lower(self) -> float:
        """Cumulative sum ``S-`` for a drop, in standard deviations (0 during warm-up)."""
        return self._lower

"""DDM, the Drift Detection Method of Gama et al. (2004), for a stream of errors (0/1).

After ``t`` values the error rate is ``p_t`` (the mean of the 0/1 values) with
binomial standard deviation ``s_t = sqrt(p_t (1 - p_t) / t)``. Once more than
``warm_start`` values have been seen, DDM remembers ``p_min`` and ``s_min`` at
the smallest ``p_t + s_t`` so far and signals

* a warning when ``p_t + s_t > p_min + warning_threshold * s_min``;
* a change when ``p_t + s_t > p_min + drift_threshold * s_min``.

DDM only detects a rise in the error rate: a model getting better is not a
change to act on.

Same parameters, defaults and arithmetic as River's ``drift.binary.DDM`` (its
thresholds multiply ``s_min`` as above; Gama et al. write ``p_min + 2 s_min``
and ``p_min + 3 s_min``, the defaults here), so detection and warning indices
are identical on the same stream (tested). Values other than 0 and 1
(``True``/``False`` are accepted) raise instead of being averaged in.

Memory: four numbers, whatever the stream length.
"""

from __future__ import annotations

import math
from typing import ClassVar

from detectors.errors import InvalidParameterError
from detectors.online.base import ONLINE_DETECTORS, ChangeDetector, check_int, check_real


@ONLINE_DETECTORS.register
class DDM(ChangeDetector):
    """Drift Detection Method: a rise in the error rate of a 0/1 stream.

    Parameters
    ----------
    warm_start
        Values seen (since the start or the last detection) before DDM
        starts tracking its minimum and can detect (``>= 0``).
    warning_threshold
        Multiple of ``s_min`` above ``p_min`` that raises :attr:`warning_detected`.
    drift_threshold
        Multiple of ``s_min`` above ``p_min`` that detects a change
        (``>= warning_threshold``).

    Examples
    --------
    The error rate rises from 10% to 30% at index 1000:

    >>> import numpy as np
    >>> rng = np.random.default_rng(7)
    >>> errors = np.concatenate([rng.random(1000) < 0.1, rng.random(1000) < 0.3])
    >>> ddm = DDM()
    >>> [i for i, e in enumerate(errors) if ddm.update(e)]
    [1039]
    """

    name: ClassVar[str] = "ddm"

    def __init__(
        self, warm_start: int = 30, warning_threshold: float = 2.0, drift_threshold: float = 3.0
    ) -> None:
        check_int("warm_start", warm_start, 0)
        check_real("warning_threshold", warning_threshold, low=0.0, low_open=True)
        check_real("drift_threshold", drift_threshold, low=float(warning_threshold))
        self.warm_start = warm_start
        self.warning_threshold = warning_threshold
        self.drift_threshold = drift_threshold
        super().__init__()

    def _reset_state(self) -> None:
        self._n = 0
        self._p = 0.0
        self._p_min = 0.0
        self._s_min = 0.0
        self._warning = False

    def update(self, x: float) -> bool:
        """Feed one error indicator (1 = error, 0 = correct); return ``True`` on a change."""
        if x not in (0, 1):
            raise InvalidParameterError("x", "0 or 1 (an error indicator)", x)
        value = self._start_update(x)
        self._n += 1
        self._p += (1.0 / self._n) * (value - self._p)
        p, n = self._p, self._n
        s = math.sqrt(p * (1 - p) / n)
        if n <= self.warm_start:
            return self._finish_update(False)
        # The first value after the warm start sets the minimum (River starts it at +inf).
        if n == self.warm_start + 1 or p + s <= self._p_min + self._s_min:
            self._p_min, self._s_min = p, s
        drift = p + s > self._p_min + self.drift_threshold * self._s_min
        self._warning = not drift and p + s > self._p_min + self.warning_threshold * self._s_min
        return self._finish_update(drift)

    @property
    def warning_detected(self) -> bool:
        """Whether the last update put the detector in the warning zone (not on a change)."""
        return self._warning

    @property
    def error_rate(self) -> float:
        """Error rate since the start or the last detection (0 before any value)."""
        return self._p

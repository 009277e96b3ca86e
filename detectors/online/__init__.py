"""Online change detectors, one module each, registered in :data:`ONLINE_DETECTORS` below.

ADWIN, Page-Hinkley, DDM, KSWIN and a two-sided CUSUM read a stream of numbers
one value at a time in memory bounded by their parameters. See
:mod:`detectors.online.base` for the conventions they share.
"""

from __future__ import annotations

from detectors.errors import UnknownDetectorError
from detectors.online.adwin import ADWIN
from detectors.online.base import ONLINE_DETECTORS, ChangeDetector
from detectors.online.cusum import CUSUM
from detectors.online.ddm import DDM
from detectors.online.kswin import KSWIN
from detectors.online.page_hinkley import PageHinkley

__all__ = [
    "ADWIN",
    "CUSUM",
    "DDM",
    "KSWIN",
    "ONLINE_DETECTORS",
    "ChangeDetector",
    "PageHinkley",
    "UnknownDetectorError",
]

"""Online change detectors, one module each; importing this package registers all of them.

ADWIN, Page-Hinkley, DDM, KSWIN and a two-sided CUSUM read a stream of numbers
one value at a time in memory bounded by their parameters. See
:mod:`detectors.online.base` for the conventions they share.
"""

from __future__ import annotations

import importlib
import pkgutil

from detectors.online.base import (
    ChangeDetector,
    UnknownDetectorError,
    detector_names,
    get_detector,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ChangeDetector", "UnknownDetectorError", "detector_names", "get_detector", "register"]

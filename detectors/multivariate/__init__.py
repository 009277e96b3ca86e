"""Multivariate drift methods, one module each; importing this package registers all of them.

Entry points: :func:`multivariate_drift` (a profile and a window sketch that
both keep a row sample) and ``get_multivariate_method(name).compare(reference,
current)`` (two arrays or two row samples).
"""

from __future__ import annotations

import importlib
import pkgutil

from detectors.multivariate.base import (
    MissingSampleError,
    MultivariateMethod,
    MultivariateResult,
    get_multivariate_method,
    multivariate_method_names,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in {"base", "report"}:
        importlib.import_module(f"{__name__}.{_module.name}")

from detectors.multivariate.report import (  # noqa: E402 (after the methods register)
    DEFAULT_MULTIVARIATE_METHODS,
    multivariate_drift,
)

__all__ = [
    "DEFAULT_MULTIVARIATE_METHODS",
    "MissingSampleError",
    "MultivariateMethod",
    "MultivariateResult",
    "get_multivariate_method",
    "multivariate_drift",
    "multivariate_method_names",
    "register",
]

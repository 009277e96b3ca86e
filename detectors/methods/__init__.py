"""Drift methods, one module each; importing this package registers all of them."""

from __future__ import annotations

import importlib
import pkgutil

from detectors.methods.base import (
    DriftMethod,
    MethodResult,
    get_method,
    method_names,
    register,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["DriftMethod", "MethodResult", "get_method", "method_names", "register"]

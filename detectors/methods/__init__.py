"""Drift methods, one module each, registered in :data:`DRIFT_METHODS` by the imports below.

>>> from detectors.kinds import ColumnKind
>>> DRIFT_METHODS.names(lambda method: method.supports(ColumnKind.CATEGORICAL))
['chi_square', 'g_test', 'hellinger', 'jensen_shannon', 'psi', 'total_variation']

A new method's module is imported here (which registers it) and its class
named in ``__all__``; ``tests/detectors/test_registry.py`` fails on a
subclass defined but not imported here.
"""

from __future__ import annotations

from detectors.methods.anderson_darling import AndersonDarling
from detectors.methods.base import (
    DRIFT_METHODS,
    CategoricalMethod,
    DriftMethod,
    MethodResult,
    NumericMethod,
)
from detectors.methods.chi_square import ChiSquare
from detectors.methods.cramer_von_mises import CramerVonMises
from detectors.methods.g_test import GTest
from detectors.methods.hellinger import Hellinger
from detectors.methods.jensen_shannon import JensenShannon
from detectors.methods.ks import KolmogorovSmirnov
from detectors.methods.psi import PopulationStabilityIndex
from detectors.methods.total_variation import TotalVariation
from detectors.methods.wasserstein import Wasserstein

__all__ = [
    "DRIFT_METHODS",
    "AndersonDarling",
    "CategoricalMethod",
    "ChiSquare",
    "CramerVonMises",
    "DriftMethod",
    "GTest",
    "Hellinger",
    "JensenShannon",
    "KolmogorovSmirnov",
    "MethodResult",
    "NumericMethod",
    "PopulationStabilityIndex",
    "TotalVariation",
    "Wasserstein",
]

"""Multivariate drift methods, one module each, registered in :data:`MULTIVARIATE_METHODS` below.

Entry points: :func:`multivariate_drift` (a profile and a window sketch that
both keep a row sample) and ``MULTIVARIATE_METHODS.create(name).compare(reference,
current)`` (two arrays or two row samples).
"""

from __future__ import annotations

from detectors.multivariate.base import (
    MULTIVARIATE_METHODS,
    MissingSampleError,
    MultivariateMethod,
    MultivariateResult,
)
from detectors.multivariate.domain_classifier import DomainClassifier, DomainClassifierResult
from detectors.multivariate.mmd import MMD, MMDResult
from detectors.multivariate.pca_reconstruction import PCAReconstruction, PCAReconstructionResult
from detectors.multivariate.report import DEFAULT_MULTIVARIATE_METHODS, multivariate_drift

__all__ = [
    "DEFAULT_MULTIVARIATE_METHODS",
    "MMD",
    "MULTIVARIATE_METHODS",
    "DomainClassifier",
    "DomainClassifierResult",
    "MMDResult",
    "MissingSampleError",
    "MultivariateMethod",
    "MultivariateResult",
    "PCAReconstruction",
    "PCAReconstructionResult",
    "multivariate_drift",
]

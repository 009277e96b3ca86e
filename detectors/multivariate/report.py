"""Run multivariate methods on the row samples of a reference profile and a window sketch."""

from __future__ import annotations

from collections.abc import Sequence

from detectors.multivariate.base import (
    MULTIVARIATE_METHODS,
    MissingSampleError,
    MultivariateMethod,
    MultivariateResult,
)
from detectors.profile import ReferenceProfile
from detectors.sample import DEFAULT_ONE_HOT_LEVELS
from detectors.sketch import WindowSketch

#: Methods :func:`multivariate_drift` runs unless told otherwise.
DEFAULT_MULTIVARIATE_METHODS = ("pca_reconstruction", "domain_classifier", "mmd")


def multivariate_drift(
    profile: ReferenceProfile,
    current: WindowSketch,
    methods: Sequence[str | MultivariateMethod] = DEFAULT_MULTIVARIATE_METHODS,
    *,
    alpha: float = 0.05,
    seed: int = 0,
    max_levels: int = DEFAULT_ONE_HOT_LEVELS,
    reference: WindowSketch | None = None,
) -> tuple[MultivariateResult, ...]:
    """Compare the row sample of ``current`` with the reference's; return one result per method.

    ``methods`` are registered names (built with ``alpha`` and ``seed`` and
    otherwise their defaults) or configured instances (used as they are).
    ``max_levels`` sets the categorical features' one-hot encoding;
    ``reference`` replaces the profile's own sketch (a rolling reference).
    Raises :class:`MissingSampleError` when either side keeps no row sample.

    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> frame = pd.DataFrame(rng.normal(size=(1000, 2)), columns=["a", "b"])
    >>> profile = ReferenceProfile.from_frame(frame, sample=True)
    >>> window = profile.sketch(frame.iloc[:300], sample=True)
    >>> [(r.method, r.drift) for r in multivariate_drift(profile, window, ["mmd"])]
    [('mmd', False)]
    """
    base = reference or profile.reference
    if base.sample is None:
        fix = (
            "build it with ReferenceProfile.from_frame(..., sample=True)"
            if reference is None
            else "build the reference sketch with sample=True"
        )
        raise MissingSampleError("reference", fix)
    if current.sample is None:
        raise MissingSampleError(
            "current window's sketch", "build it with ReferenceProfile.sketch(..., sample=True)"
        )
    results = []
    for method in methods:
        if isinstance(method, str):
            method = MULTIVARIATE_METHODS.create(method, alpha=alpha, seed=seed)
        results.append(method.compare(base.sample, current.sample, max_levels=max_levels))
    return tuple(results)

"""Multivariate drift for ``driftline check --multivariate``.

Univariate tests miss a change in how features move together when each
feature's own distribution stays put. With ``--multivariate`` (or a
``multivariate.methods`` list in the config), ``check`` draws the same
bounded, hash-keyed row samples the service keeps per window
(:class:`detectors.sample.RowSample`: ``reference_rows`` reference rows,
``current_rows`` current rows) over the monitored features -- not the
prediction -- and runs each configured method of
:mod:`detectors.multivariate` on them: PCA reconstruction error against a
reference-derived threshold, a domain classifier's cross-fitted AUC with a
permutation p-value, and MMD with an RBF kernel and a permutation p-value.

It is opt-in because its cost does not shrink with the data: about 0.1 s for
PCA and the domain classifier and 0.7 s for MMD's permutations on the default
samples, more than the whole univariate check of 100,000 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from detectors.multivariate import MULTIVARIATE_METHODS, MultivariateResult
from detectors.profile import ReferenceProfile
from detectors.sample import RowSample
from monitor.config.drift import MultivariateSection


def check_multivariate(
    profile: ReferenceProfile,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: Sequence[str],
    settings: MultivariateSection,
) -> tuple[MultivariateResult, ...]:
    """Return one result per configured method, on row samples of ``features`` of both frames."""
    specs = {name: profile.specs[name] for name in features}
    ref = RowSample.from_frame(reference[list(features)], specs, size=settings.reference_rows)
    cur = RowSample.from_frame(current[list(features)], specs, size=settings.current_rows)
    methods = [
        MULTIVARIATE_METHODS.create(name, alpha=settings.alpha, seed=settings.seed)
        for name in settings.methods
    ]
    return tuple(method.compare(ref, cur) for method in methods)

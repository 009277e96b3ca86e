r"""PCA reconstruction error: do the current rows still lie where the reference's variance does?

Procedure, with ``n_r`` reference rows, ``n_c`` current rows and ``d`` columns:

1. Shuffle the reference (seeded) and split it: the first
   ``max(2, floor(fit_fraction * n_r))`` rows (at most ``n_r - 2``) fit the
   model, the other ``h`` rows are *held out*.
2. Standardise every column with the fit rows' mean and standard deviation
   (missing values become the mean; a constant column keeps scale 1).
3. Fit PCA by SVD of the standardised fit rows; keep the fewest components
   whose explained variance reaches ``variance`` of the total (0.9 by default).
4. The error of a row ``z`` is the mean squared residual per column,
   ``||z - V V^T z||^2 / d`` (``V``: the kept components), counted as 0 below
   1e-12 (rounding noise: when the kept components span every direction the
   reference varies in, as with a few independent features or one-hot
   columns that always sum to one, residuals are ~1e-31 and would otherwise
   be compared as if they meant something). The **statistic** is the mean
   error of the current rows.
5. The **threshold** comes from the held-out reference rows, which, like the
   current rows, were not used in fitting: with ``m_h`` their mean error, draw
   ``bootstrap`` pairs of (a chunk of ``n_c`` held-out errors, with
   replacement; a resample of all ``h`` held-out errors) and take
   ``threshold = m_h + q_{1 - alpha}(chunk mean - resample mean)``.
   Without the resample term this is the ``1 - alpha`` quantile of the mean
   error of reference chunks of the current's size; the term widens it for the
   uncertainty of ``m_h`` itself, which would otherwise raise the false-alarm
   rate from ``alpha`` to ``1 - Phi(z_{1-alpha} / sqrt(1 + n_c / h))`` (5% at
   ``alpha = 0.01`` when ``n_c = h``).
6. Drift when ``statistic > threshold``. There is no p-value: ``threshold``
   applies to the statistic, as for distance methods.

When it works: when the reference's features are correlated (its variance
lies in fewer directions than features) and the current rows move off that
subspace: a correlation that breaks or changes sign, a new combination of
categories, a feature that stops tracking the others. It is blind to a
correlation that appears between features that were independent in the
reference (their directions are all kept, or all equally discarded), and to
shifts along the kept components; use ``mmd`` or ``domain_classifier`` for
those.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors._arrays import FloatArray
from detectors.errors import check_int, check_real
from detectors.multivariate.base import (
    MULTIVARIATE_METHODS,
    MultivariateMethod,
    MultivariateResult,
    standardize,
    standardizer,
)

#: Mean squared residuals (in squared standard deviations) below this are rounding noise.
_NOISE = 1e-12
#: Bootstrap draws held in memory at once (rows x draws), to bound memory on large inputs.
_DRAWS_PER_BATCH = 1 << 22


@dataclass(frozen=True, slots=True, kw_only=True)
class PCAReconstructionResult(MultivariateResult):
    """A :class:`MultivariateResult` of ``pca_reconstruction`` and the parameters it used.

    ``n_components`` is the number of components kept, ``explained`` the share
    of the fit rows' variance they explain, ``fit_rows`` and ``held_out_rows``
    the reference split, ``reference_error`` the held-out rows' mean error.
    """

    variance: float
    fit_fraction: float
    bootstrap: int
    n_components: int
    explained: float
    fit_rows: int
    held_out_rows: int
    reference_error: float


@MULTIVARIATE_METHODS.register
class PCAReconstruction(MultivariateMethod):
    """Mean PCA reconstruction error of the current rows against a held-out reference bound.

    ``variance`` is the share of the reference's variance the kept components
    explain, ``fit_fraction`` the share of reference rows that fit the model
    (the rest set the threshold), ``bootstrap`` the number of draws behind
    the threshold. The procedure is in the module docstring.

    >>> rng = np.random.default_rng(0)
    >>> cov = [[1.0, 0.9], [0.9, 1.0]]
    >>> reference = rng.multivariate_normal([0, 0], cov, 1000)
    >>> current = rng.normal(size=(500, 2))  # same marginals, correlation gone
    >>> result = PCAReconstruction().compare(reference, current)
    >>> result.drift, result.n_components, round(result.statistic, 2)
    (True, 1, 0.5)
    """

    name = "pca_reconstruction"
    title = "PCA reconstruction error"
    is_test = False
    # Two rows to fit, two held out (the threshold needs a spread); one current row.
    min_reference_rows = 4
    min_current_rows = 1

    def __init__(
        self,
        *,
        variance: float = 0.9,
        fit_fraction: float = 0.5,
        bootstrap: int = 1000,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        self.variance = check_real(
            "variance", variance, low=0, high=1, low_open=True, high_open=True
        )
        self.fit_fraction = check_real(
            "fit_fraction", fit_fraction, low=0, high=1, low_open=True, high_open=True
        )
        self.bootstrap = check_int("bootstrap", bootstrap, 1)

    def _compare(
        self, reference: FloatArray, current: FloatArray, rng: np.random.Generator
    ) -> MultivariateResult:
        n_ref = reference.shape[0]
        n_fit = min(max(2, math.floor(self.fit_fraction * n_ref)), n_ref - 2)
        order = rng.permutation(n_ref)
        fit, held_out = reference[order[:n_fit]], reference[order[n_fit:]]
        mean, scale = standardizer(fit)
        z_fit = standardize(fit, mean, scale)
        _, singular, components = np.linalg.svd(z_fit, full_matrices=False)
        power = singular**2
        total = float(power.sum())
        if total > 0:
            cumulative = np.cumsum(power) / total
            kept = int(np.searchsorted(cumulative, self.variance - 1e-12) + 1)
            kept = min(kept, power.size)
            explained = float(cumulative[kept - 1])
        else:  # every fit row is the mean: nothing to project on
            kept, explained = 0, 1.0
        basis = components[:kept].T

        def errors(rows: FloatArray) -> FloatArray:
            z = standardize(rows, mean, scale)
            residual = z - (z @ basis) @ basis.T
            error = np.einsum("ij,ij->i", residual, residual) / z.shape[1]
            # Rounding noise is not an error: when the kept components span every direction
            # the reference varies in, residuals are ~1e-31 and comparing them is meaningless.
            return np.asarray(np.where(error < _NOISE, 0.0, error))

        statistic = float(errors(current).mean())
        held_errors = errors(held_out)
        reference_error = float(held_errors.mean())
        spread = _bootstrap_spread(held_errors, current.shape[0], self.bootstrap, rng)
        threshold = reference_error + float(np.quantile(spread, 1 - self.alpha))
        return PCAReconstructionResult(
            **self._common(
                statistic=statistic,
                threshold=threshold,
                p_value=None,
                n_reference=n_ref,
                n_current=current.shape[0],
                n_features=current.shape[1],
            ),
            variance=self.variance,
            fit_fraction=self.fit_fraction,
            bootstrap=self.bootstrap,
            n_components=kept,
            explained=explained,
            fit_rows=n_fit,
            held_out_rows=n_ref - n_fit,
            reference_error=reference_error,
        )

    def _undefined(self, common: dict[str, Any]) -> MultivariateResult:
        return PCAReconstructionResult(
            **common,
            variance=self.variance,
            fit_fraction=self.fit_fraction,
            bootstrap=self.bootstrap,
            n_components=0,
            explained=math.nan,
            fit_rows=0,
            held_out_rows=0,
            reference_error=math.nan,
        )


def _bootstrap_spread(
    errors: FloatArray, chunk: int, draws: int, rng: np.random.Generator
) -> FloatArray:
    """Return ``draws`` values of (mean of ``chunk`` resampled errors - mean of a full resample)."""
    h = errors.size
    per_batch = max(1, _DRAWS_PER_BATCH // (chunk + h))
    spread = np.empty(draws, dtype=np.float64)
    for start in range(0, draws, per_batch):
        stop = min(draws, start + per_batch)
        chunks = errors[rng.integers(0, h, size=(stop - start, chunk))].mean(axis=1)
        centres = errors[rng.integers(0, h, size=(stop - start, h))].mean(axis=1)
        spread[start:stop] = chunks - centres
    return spread

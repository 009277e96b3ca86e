r"""Domain classifier: can a model tell current rows from reference rows?

Procedure, on the pooled ``N`` rows (reference labelled 0, current 1):

1. Standardise every column with the *pooled* mean and standard deviation
   (missing values become the mean). With more than ``max_dims`` columns,
   keep the pooled sample's first ``max_dims`` principal components, whitened.
2. Features: each column ``z_i``, its square ``z_i^2`` and every pairwise
   product ``z_i z_j`` (``i < j``), each standardised on the pooled rows. The
   squares and products are what make a change of variance or correlation
   visible to a linear model: ``E[z_1 z_2]`` is the correlation.
3. Classifier: ridge-regularised least squares on the 0/1 label (without the
   penalty, Fisher's discriminant up to scale), with penalty ``l2 * n_train``.
   Its fit is one linear solve, and the solve's matrix does not depend on the
   labels, which is what makes refitting for every permutation cheap.
4. ``folds``-fold cross-fitting on a seeded random split: every row is
   scored by the model fitted on the other folds; the **statistic** is the
   mean over folds of the out-of-fold AUC (Mann-Whitney ranks; 0.5 means the
   two sets are indistinguishable).
5. **p-value**: the labels are permuted ``permutations`` times (seeded) and
   the whole cross-fit repeated on the same folds; ``p = (1 + #{AUC_perm >=
   AUC}) / (1 + permutations)``. Every step before the labels is computed on
   the pooled rows without them, so under "no drift" the permuted AUCs and the
   observed one are exchangeable and the test has level ``alpha`` exactly
   (up to the ``1 / (1 + permutations)`` resolution of the p-value).
6. Drift when ``p <= alpha``; ``threshold`` is ``alpha``.

When it works: any change of means, variances or correlations (second
moments) among the first ``max_dims`` pooled components; it also says how
separable the sets are (the AUC), which reads more easily than a p-value.
Higher moments only enter through the squares; ``mmd`` sees any change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors._arrays import FloatArray
from detectors.errors import InvalidParameterError, check_int
from detectors.multivariate.base import (
    MULTIVARIATE_METHODS,
    MultivariateMethod,
    MultivariateResult,
    permutation_p_value,
    rank_auc,
    standardize,
    standardizer,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainClassifierResult(MultivariateResult):
    """A :class:`MultivariateResult` of ``domain_classifier`` (statistic: the cross-fitted AUC).

    ``n_terms`` is the number of features the classifier used (columns,
    squares and products); ``critical_auc`` the ``1 - alpha`` quantile of the
    permuted AUCs, the AUC above which a window would drift.
    """

    folds: int
    permutations: int
    l2: float
    max_dims: int
    n_terms: int
    critical_auc: float


@MULTIVARIATE_METHODS.register
class DomainClassifier(MultivariateMethod):
    """Cross-fitted AUC of a quadratic ridge classifier of reference vs current, permutation-tested.

    ``folds`` is the number of cross-fitting folds, ``permutations`` the label
    permutations behind the p-value, ``l2`` the ridge penalty per training row
    and ``max_dims`` the most columns used before reducing to principal
    components. The procedure is in the module docstring.

    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(size=(600, 3))
    >>> current = rng.normal(size=(300, 3))
    >>> current[:, 1] = 0.8 * current[:, 0] + 0.6 * current[:, 1]  # correlated, same marginals
    >>> result = DomainClassifier().compare(reference, current)
    >>> result.drift, result.p_value, round(result.statistic, 2)
    (True, 0.009900990099009901, 0.72)
    """

    name = "domain_classifier"
    title = "Domain classifier AUC"
    is_test = True
    # Every fold's test part should hold rows of both sides.
    min_reference_rows = 10
    min_current_rows = 10

    def __init__(
        self,
        *,
        folds: int = 5,
        permutations: int = 100,
        l2: float = 0.1,
        max_dims: int = 20,
        alpha: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__(alpha=alpha, seed=seed)
        self.folds = check_int("folds", folds, 2)
        self.permutations = check_int("permutations", permutations, 1)
        if not (isinstance(l2, int | float) and l2 > 0 and math.isfinite(l2)):
            raise InvalidParameterError("l2", "a positive number", l2)
        self.l2 = float(l2)
        self.max_dims = check_int("max_dims", max_dims, 1)

    def _compare(
        self, reference: FloatArray, current: FloatArray, rng: np.random.Generator
    ) -> MultivariateResult:
        pooled = np.concatenate((reference, current))
        n = pooled.shape[0]
        terms = quadratic_features(pooled, self.max_dims)
        labels = np.zeros((n, self.permutations + 1), dtype=bool)
        labels[reference.shape[0] :, 0] = True
        for b in range(1, self.permutations + 1):
            labels[:, b] = labels[rng.permutation(n), 0]
        assignment = rng.permutation(n) % self.folds
        fold_aucs = np.full((self.folds, self.permutations + 1), np.nan)
        for fold in range(self.folds):
            train, test = assignment != fold, assignment == fold
            scores = _ridge_scores(terms[train], labels[train], terms[test], self.l2)
            fold_aucs[fold] = rank_auc(scores, labels[test])
        with np.errstate(invalid="ignore"):
            aucs = np.nanmean(fold_aucs, axis=0)
        statistic = float(aucs[0])
        p_value = permutation_p_value(statistic, aucs[1:])
        return DomainClassifierResult(
            **self._common(
                statistic=statistic,
                threshold=self.alpha,
                p_value=p_value,
                n_reference=reference.shape[0],
                n_current=current.shape[0],
                n_features=reference.shape[1],
            ),
            folds=self.folds,
            permutations=self.permutations,
            l2=self.l2,
            max_dims=self.max_dims,
            n_terms=terms.shape[1],
            critical_auc=float(np.nanquantile(aucs[1:], 1 - self.alpha)),
        )

    def _undefined(self, common: dict[str, Any]) -> MultivariateResult:
        return DomainClassifierResult(
            **common,
            folds=self.folds,
            permutations=self.permutations,
            l2=self.l2,
            max_dims=self.max_dims,
            n_terms=0,
            critical_auc=math.nan,
        )


def quadratic_features(rows: FloatArray, max_dims: int) -> FloatArray:
    """Return the standardised columns, squares and pairwise products of ``rows`` (step 1-2).

    Everything is computed from ``rows`` alone (no labels); constant terms are dropped.
    """
    mean, scale = standardizer(rows)
    z = standardize(rows, mean, scale)
    if z.shape[1] > max_dims:
        _, singular, components = np.linalg.svd(z, full_matrices=False)
        spread = singular[:max_dims] / math.sqrt(z.shape[0])
        z = (z @ components[:max_dims].T) / np.where(spread > 0, spread, 1.0)
    upper_i, upper_j = np.triu_indices(z.shape[1], k=1)
    terms = np.concatenate((z, z**2, z[:, upper_i] * z[:, upper_j]), axis=1)
    centre, spread_terms = terms.mean(axis=0), terms.std(axis=0)
    varying = spread_terms > 1e-12
    return np.asarray((terms[:, varying] - centre[varying]) / spread_terms[varying])


def _ridge_scores(
    train: FloatArray, labels: npt.NDArray[np.bool_], test: FloatArray, l2: float
) -> FloatArray:
    """Scores of ``test`` under ridge fits of every label column of ``labels`` on ``train``."""
    centre = train.mean(axis=0)
    x = train - centre
    gram = x.T @ x + l2 * train.shape[0] * np.eye(train.shape[1])
    # x's columns sum to zero, so x.T @ labels equals x.T @ (centred labels): one solve for all.
    coefficients = np.linalg.solve(gram, x.T @ labels.astype(np.float64))
    return np.asarray((test - centre) @ coefficients)

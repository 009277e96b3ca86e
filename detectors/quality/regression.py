r"""Regression quality from a constant-size, mergeable sketch of labelled rows.

A :class:`RegressionSketch` of ``n`` rows with targets ``y`` and predictions
``f`` (errors ``e = f - y``) keeps

* ``sum e``, ``sum |e|``, ``sum e^2``;
* ``sum |e| / max(|y|, eps)`` with ``eps`` float64's machine epsilon, exactly
  scikit-learn's ``mean_absolute_percentage_error`` terms: a zero target is not
  skipped but divided by ``eps`` (a huge value, as in scikit-learn, which
  documents it); ``zero_targets`` counts those rows so a report can say why
  MAPE is huge;
* the count, mean and ``M2 = sum (y - mean)^2`` of the targets, merged with
  the parallel-variance update of Chan, Golub and LeVeque (1979):
  ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
  ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``. Unlike ``sum y^2 - n mean^2`` it
  does not cancel catastrophically when the targets' mean is large compared
  with their spread.

Metrics (:meth:`RegressionSketch.metrics`), each equal to scikit-learn's on
the same rows up to float rounding (tested at relative 1e-9, also after
merging sketches of parts):

* ``MAE = sum |e| / n`` (``mean_absolute_error``);
* ``RMSE = sqrt(sum e^2 / n)`` (``root_mean_squared_error``);
* ``MAPE = sum |e| / max(|y|, eps) / n`` (``mean_absolute_percentage_error``, a
  fraction, not a percentage);
* ``R^2 = 1 - sum e^2 / M2`` (``r2_score`` with its defaults): NaN below two
  rows, 1.0 when ``sum e^2 = 0``, 0.0 when ``M2 = 0`` otherwise;
* mean error (bias) ``sum e / n``: positive when the model over-predicts.

Float sums merge up to rounding of the addition order (relative 1e-12). An
empty sketch gives NaN metrics.

>>> sketch = RegressionSketch.from_arrays([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
>>> m = sketch.metrics()
>>> m.mae, m.rmse, round(m.r2, 6), m.mean_error
(0.5, 0.6123724356957945, 0.948608, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from detectors.errors import check_version
from detectors.quality._labels import finite_floats, same_length

REGRESSION_FORMAT_VERSION = 1
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegressionMetrics:
    """Quality of a regression model over ``rows`` labelled rows (NaN when undefined)."""

    rows: int
    mae: float
    mse: float
    rmse: float
    mape: float
    r2: float
    mean_error: float
    zero_targets: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict (NaN as None)."""
        return {
            "rows": self.rows,
            "mae": _json_float(self.mae),
            "mse": _json_float(self.mse),
            "rmse": _json_float(self.rmse),
            "mape": _json_float(self.mape),
            "r2": _json_float(self.r2),
            "mean_error": _json_float(self.mean_error),
            "zero_targets": self.zero_targets,
        }


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class RegressionSketch:
    """Error sums and target moments of labelled rows; see the module docstring for formulas."""

    rows: int = 0
    error_sum: float = 0.0
    absolute_error_sum: float = 0.0
    squared_error_sum: float = 0.0
    percentage_error_sum: float = 0.0
    zero_targets: int = 0
    target_mean: float = 0.0
    target_m2: float = 0.0

    format: ClassVar[str] = "driftline.regression_sketch"

    @classmethod
    def from_arrays(cls, y_true: Any, y_pred: Any) -> RegressionSketch:
        """Return the sketch of targets ``y_true`` and predictions ``y_pred`` (finite numbers).

        Non-finite values raise :class:`~detectors.errors.InvalidParameterError`:
        drop rows without a target first.
        """
        y = finite_floats(y_true, "y_true")
        f = finite_floats(y_pred, "y_pred")
        same_length("y_pred", y.size, f)
        if y.size == 0:
            return cls()
        error = f - y
        absolute = np.abs(error)
        magnitude = np.abs(y)
        mean = float(y.mean())
        return cls(
            rows=int(y.size),
            error_sum=float(error.sum()),
            absolute_error_sum=float(absolute.sum()),
            squared_error_sum=float(np.square(error).sum()),
            percentage_error_sum=float((absolute / np.maximum(magnitude, _EPS)).sum()),
            zero_targets=int((magnitude < _EPS).sum()),
            target_mean=mean,
            target_m2=float(np.square(y - mean).sum()),
        )

    def merge(self, other: RegressionSketch) -> RegressionSketch:
        """Return the sketch of the union of both sets of rows."""
        if not other.rows:
            return self
        if not self.rows:
            return other
        n = self.rows + other.rows
        delta = other.target_mean - self.target_mean
        return RegressionSketch(
            rows=n,
            error_sum=self.error_sum + other.error_sum,
            absolute_error_sum=self.absolute_error_sum + other.absolute_error_sum,
            squared_error_sum=self.squared_error_sum + other.squared_error_sum,
            percentage_error_sum=self.percentage_error_sum + other.percentage_error_sum,
            zero_targets=self.zero_targets + other.zero_targets,
            target_mean=self.target_mean + delta * (other.rows / n),
            target_m2=self.target_m2
            + other.target_m2
            + delta * delta * (self.rows * other.rows / n),
        )

    def metrics(self) -> RegressionMetrics:
        """Return MAE, MSE, RMSE, MAPE, R² and mean error (all NaN for an empty sketch)."""
        n = self.rows
        if not n:
            nan = math.nan
            return RegressionMetrics(
                rows=0, mae=nan, mse=nan, rmse=nan, mape=nan, r2=nan, mean_error=nan, zero_targets=0
            )
        mse = self.squared_error_sum / n
        return RegressionMetrics(
            rows=n,
            mae=self.absolute_error_sum / n,
            mse=mse,
            rmse=math.sqrt(mse),
            mape=self.percentage_error_sum / n,
            r2=self._r2(),
            mean_error=self.error_sum / n,
            zero_targets=self.zero_targets,
        )

    def _r2(self) -> float:
        # scikit-learn's force_finite=True rules, in its order.
        if self.rows < 2:
            return math.nan
        if self.squared_error_sum == 0:
            return 1.0
        if self.target_m2 == 0:
            return 0.0
        return 1.0 - self.squared_error_sum / self.target_m2

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegressionSketch):
            return NotImplemented
        return (self.rows, self.zero_targets) == (other.rows, other.zero_targets) and bool(
            np.allclose(self._sums(), other._sums(), rtol=1e-12, atol=1e-9)
        )

    __hash__ = None  # type: ignore[assignment]

    def _sums(self) -> list[float]:
        return [
            self.error_sum,
            self.absolute_error_sum,
            self.squared_error_sum,
            self.percentage_error_sum,
            self.target_mean,
            self.target_m2,
        ]

    def to_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict."""
        return {
            "format": self.format,
            "version": REGRESSION_FORMAT_VERSION,
            "rows": self.rows,
            "error_sum": self.error_sum,
            "absolute_error_sum": self.absolute_error_sum,
            "squared_error_sum": self.squared_error_sum,
            "percentage_error_sum": self.percentage_error_sum,
            "zero_targets": self.zero_targets,
            "target_mean": self.target_mean,
            "target_m2": self.target_m2,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegressionSketch:
        """Rebuild a sketch from :meth:`to_dict` output; newer format versions are refused."""
        check_version(data, cls.format, REGRESSION_FORMAT_VERSION)
        return cls(
            rows=int(data["rows"]),
            error_sum=float(data["error_sum"]),
            absolute_error_sum=float(data["absolute_error_sum"]),
            squared_error_sum=float(data["squared_error_sum"]),
            percentage_error_sum=float(data["percentage_error_sum"]),
            zero_targets=int(data["zero_targets"]),
            target_mean=float(data["target_mean"]),
            target_m2=float(data["target_m2"]),
        )


def _json_float(value: float) -> float | None:
    return value if math.isfinite(value) else None

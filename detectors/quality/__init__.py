"""Model and data quality per window, from bounded, mergeable sketches.

* :mod:`detectors.quality.classification` -- accuracy, precision, recall, F1,
  ROC AUC and average precision (with error bounds), log loss, Brier score and
  expected calibration error when labels exist;
* :mod:`detectors.quality.regression` -- MAE, RMSE, MAPE, R² and bias;
* :mod:`detectors.quality.data_quality` -- missing values, type violations,
  out-of-range values, unseen categories, constant columns and schema changes
  of a window against the reference profile.
"""

from __future__ import annotations

from detectors.quality.classification import (
    BinaryScoreSketch,
    ClassificationMetrics,
    ClassificationSketch,
    ClassMetrics,
)
from detectors.quality.data_quality import (
    DataQualityReport,
    DataQualityThresholds,
    QualityCheck,
    QualityCheckName,
    data_quality,
)
from detectors.quality.regression import RegressionMetrics, RegressionSketch

__all__ = [
    "BinaryScoreSketch",
    "ClassMetrics",
    "ClassificationMetrics",
    "ClassificationSketch",
    "DataQualityReport",
    "DataQualityThresholds",
    "QualityCheck",
    "QualityCheckName",
    "RegressionMetrics",
    "RegressionSketch",
    "data_quality",
]

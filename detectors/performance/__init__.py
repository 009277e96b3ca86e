"""Model performance estimated without labels.

* :mod:`detectors.performance.cbpe` -- confidence-based performance estimation
  (CBPE) of a binary classifier's ROC AUC, accuracy, precision, recall,
  specificity and F1 from calibrated scores, with a mergeable per-window sketch;
* :mod:`detectors.performance.calibration` -- isotonic calibration (pool
  adjacent violators) and the check that decides whether to calibrate.
"""

from __future__ import annotations

from detectors.performance.calibration import (
    CalibrationCheck,
    IsotonicCalibrator,
    calibration_check,
    isotonic_regression,
)
from detectors.performance.cbpe import CBPE, CBPESketch, PerformanceEstimate

__all__ = [
    "CBPE",
    "CBPESketch",
    "CalibrationCheck",
    "IsotonicCalibrator",
    "PerformanceEstimate",
    "calibration_check",
    "isotonic_regression",
]

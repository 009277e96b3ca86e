"""Labels as the store keeps them, ``str(value)``, read back for comparison and arithmetic.

Window quality (:mod:`monitor.analyses.quality`) and the error stream of change
detection (:mod:`monitor.analyses.change_detection`) compare stored labels with
:func:`stored_label`, so that they match as
:func:`detectors.labels.canonical_label` writes the original values, and read
them as numbers with :func:`label_number`.
"""

from __future__ import annotations

import math
import re

from detectors.labels import canonical_label

__all__ = ["label_number", "stored_label"]

# str() of an integral float: the store's text of a label record's 1.0.
_INTEGRAL_FLOAT = re.compile(r"-?\d+\.0")


def stored_label(text: str) -> str:
    """Return the canonical label of a label as the store keeps it (``str(value)``).

    >>> [stored_label(t) for t in ("True", "1.0", "1", "approve", "2.5")]
    ['true', '1', '1', 'approve', '2.5']
    """
    if text in ("True", "False"):
        return text.lower()
    if _INTEGRAL_FLOAT.fullmatch(text):
        return canonical_label(float(text))
    return text


def label_number(text: str | None) -> float | None:
    """Return a stored label (text) as a finite number, or None when it is not one.

    >>> [label_number(t) for t in ("2.5", "nan", "approve", None)]
    [2.5, None, None, None]
    """
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None

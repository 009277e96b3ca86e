"""How labels are normalised: the contract every count, comparison and key of a label follows.

A categorical value, a class label, a predicted label and a configured
positive class are all compared as the string :func:`canonical_label` writes.
This is contract behaviour, not a helper: reference profiles, window sketches,
stored labels and quality metrics written by one version are read by the next
by these strings, so changing how a value is written changes which stored
counts and labels match: treat a change as a breaking change of saved state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["canonical_label"]


def canonical_label(value: Any) -> str:
    """Return the string a label or categorical value is counted and compared under.

    Contract behaviour (see the module docstring): integral numbers print
    without a decimal point (``1`` and ``1.0`` are the same level, as they are
    when one file has missing values and the other not), booleans as
    ``true``/``false``, everything else as ``str(value)`` (non-integral floats
    as ``repr``).

    >>> [canonical_label(v) for v in (True, 3, 3.0, 2.5, "EU")]
    ['true', '3', '3', '2.5', 'EU']
    """
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        if np.isfinite(value) and float(value).is_integer():
            return str(int(value))
        return repr(float(value))
    return str(value)

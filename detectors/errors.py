"""Exceptions raised by the statistics library.

Each subclasses the built-in it refines, so callers that only know
``ValueError`` or ``TypeError`` still catch them, and each builds its message
from its arguments so the text is consistent wherever it is raised.

:func:`check_version` checks the format and version of serialised state
before it is read. :func:`check_int` and :func:`check_real` validate the
integer and real-number parameters of every detector package, raising
:class:`InvalidParameterError` with one wording for each kind of bound.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any


class InvalidParameterError(ValueError):
    """A constructor or function argument is outside its allowed values."""

    def __init__(self, name: str, allowed: str, given: object) -> None:
        self.name = name
        self.allowed = allowed
        self.given = given
        super().__init__(f"{name} must be {allowed}; got {given!r}")


class UnknownMethodError(KeyError):
    """A name is not in a :class:`~detectors.registry.Registry`; the message lists the known ones.

    ``kind`` says what was looked up (``"drift method"``, ``"multivariate
    method"``); ``available`` is the sorted list of registered names.
    """

    #: What a name of this error's registry names, when the registry does not say.
    default_kind = "drift method"

    def __init__(self, name: str, available: Iterable[str], kind: str | None = None) -> None:
        self.name = name
        self.available = sorted(available)
        self.kind = self.default_kind if kind is None else kind
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown {self.kind} {self.name!r}; available: {', '.join(self.available)}"


class UnknownDetectorError(UnknownMethodError):
    """An online change-detector name is not in the registry."""

    default_kind = "change detector"


class IncompatibleMethodError(ValueError):
    """A drift method was asked to compare a column kind it does not support."""

    def __init__(self, method: str, kind: str, feature: str) -> None:
        super().__init__(
            f"method {method!r} does not apply to {kind} column {feature!r}; "
            f"choose a method that supports {kind} columns"
        )


class ColumnTypeError(TypeError):
    """A column's values do not match the kind recorded in the reference profile."""

    def __init__(self, feature: str, expected: str, found: str) -> None:
        self.feature = feature
        self.expected = expected
        self.found = found
        super().__init__(
            f"column {feature!r} is {expected} in the reference but {found} in the current data"
        )


class IncompatibleSketchError(ValueError):
    """Two sketches (or a sketch and a profile) were built on different bins or categories."""


class StateVersionError(ValueError):
    """Serialised state was written by a newer (or unknown) format version."""

    def __init__(self, what: str, found: object, supported: int) -> None:
        super().__init__(
            f"cannot load {what} format version {found!r}: this driftline reads versions "
            f"up to {supported}; upgrade driftline to read it"
        )


def check_version(data: Mapping[str, Any], expected_format: str, supported: int) -> None:
    """Raise unless ``data`` is serialised ``expected_format`` at a version this code reads.

    :class:`IncompatibleSketchError` for another format, :class:`StateVersionError`
    for a version newer than ``supported`` (or not a version).
    """
    if data.get("format") != expected_format:
        raise IncompatibleSketchError(
            f"expected serialised {expected_format}, got format {data.get('format')!r}"
        )
    version = data.get("version")
    if not isinstance(version, int) or not 1 <= version <= supported:
        raise StateVersionError(expected_format, version, supported)


# ---- parameter validation shared by the detectors -----------------------------------------


def check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as a plain ``int`` if it is an integer of at least ``minimum``; else raise.

    Integers are instances of :class:`numbers.Integral`: Python ``int`` and
    NumPy integer scalars (``np.int64(3)``, which NumPy registers as
    ``Integral``), so a count read from an array or a DataFrame is accepted.
    The value is returned as a plain ``int``; callers store that, never the
    argument, so NumPy scalars do not leak into attributes, reprs or saved
    state. ``bool`` (and ``np.bool_``) is refused although ``bool`` subclasses
    ``int``: ``True`` is a flag, not a count. Floats are refused even when
    integral (``3.0``), as are strings (``"3"``): no silent conversion.

    Every refusal raises :class:`InvalidParameterError` naming the parameter:

    >>> import numpy as np
    >>> folds = check_int("folds", np.int64(5), 2)
    >>> folds, type(folds)
    (5, <class 'int'>)
    >>> check_int("folds", 3.0, 2)
    Traceback (most recent call last):
    ...
    detectors.errors.InvalidParameterError: folds must be an integer >= 2; got 3.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InvalidParameterError(name, f"an integer >= {minimum}", value)
    return int(value)


def check_real(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a plain ``float`` if it is a real number in an interval; else raise.

    The interval is ``[low, high]``, each end open when ``low_open`` /
    ``high_open``; an infinite end is always open. Real numbers are instances
    of :class:`numbers.Real` (integers, floats and NumPy scalars of either)
    other than ``bool``; NaN and infinities are refused.

    >>> check_real("alpha", 0.05, low=0, high=1, low_open=True, high_open=True)
    0.05
    >>> check_real("alpha", 1, low=0, high=1, low_open=True, high_open=True)
    Traceback (most recent call last):
    ...
    detectors.errors.InvalidParameterError: alpha must be a number in (0, 1); got 1
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        v = float(value)
        above = v > low if low_open else v >= low
        below = v < high if high_open else v <= high
        if above and below and math.isfinite(v):  # NaN fails both comparisons
            return v
    raise InvalidParameterError(name, _interval(low, high, low_open, high_open), value)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    """Describe an interval for an error message (``"a number in (0, 1)"``)."""
    if math.isinf(low) and math.isinf(high):
        return "a finite number"
    if math.isinf(high):
        return f"a number {'>' if low_open else '>='} {low:g}"
    if math.isinf(low):
        return f"a number {'<' if high_open else '<='} {high:g}"
    return f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

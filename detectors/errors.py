"""Exceptions raised by the statistics library.

Each subclasses the built-in it refines, so callers that only know
``ValueError`` or ``TypeError`` still catch them, and each builds its message
from its arguments so the text is consistent wherever it is raised.
"""

from __future__ import annotations

from collections.abc import Iterable


class InvalidParameterError(ValueError):
    """A constructor or function argument is outside its allowed values."""

    def __init__(self, name: str, allowed: str, given: object) -> None:
        self.name = name
        self.allowed = allowed
        self.given = given
        super().__init__(f"{name} must be {allowed}; got {given!r}")


class UnknownMethodError(KeyError):
    """A drift method name is not in the registry."""

    def __init__(self, name: str, available: Iterable[str]) -> None:
        self.name = name
        self.available = sorted(available)
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown drift method {self.name!r}; available: {', '.join(self.available)}"


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

"""The drift-method extension point: one base class and a registry by name.

A method compares a reference and a current distribution given as a
:class:`~detectors.pairs.NumericPair` or :class:`~detectors.pairs.CategoricalPair`
and returns a :class:`MethodResult`. Adding a method is one module in this
package that defines a subclass decorated with :func:`register`, plus its
tests; modules here are imported automatically.
"""

from __future__ import annotations

import math
from abc import ABC
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.errors import IncompatibleMethodError, UnknownMethodError
from detectors.kinds import ColumnKind
from detectors.pairs import CategoricalPair, NumericPair, Pair


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodResult:
    """What one method found for one feature.

    ``statistic`` is the method's value; ``p_value`` is set for hypothesis
    tests and ``None`` for distances. ``effect_size`` is a sample-size-free
    size of the change used by the optional minimum-effect rule: the
    Kolmogorov-Smirnov distance for numeric features, the total variation
    distance for categorical ones. ``bound`` bounds ``|statistic - exact|``,
    the difference from the same statistic on the raw rows (0 when exact;
    ``inf`` when the method has no closed-form bound, see its docstring).
    """

    statistic: float
    p_value: float | None
    effect_size: float
    bound: float
    n_reference: int
    n_current: int


class DriftMethod(ABC):
    """Base class of every drift method.

    Subclasses set the class attributes and override ``numeric`` and/or
    ``categorical``; ``kinds`` must list exactly the kinds they override.
    """

    #: Registry name used in config and output (``"ks"``, ``"psi"``, ...).
    name: ClassVar[str]
    #: Human name for tables.
    title: ClassVar[str]
    #: Column kinds this method compares.
    kinds: ClassVar[frozenset[ColumnKind]]
    #: True for hypothesis tests (decide on p-values), False for distances.
    is_test: ClassVar[bool]
    #: Default decision threshold: alpha for tests, the distance for distances.
    default_threshold: ClassVar[float]

    def compare(self, pair: Pair, feature: str = "") -> MethodResult:
        """Return this method's result for ``pair`` (``feature`` names it in errors)."""
        if pair.n_reference == 0 or pair.n_current == 0:
            return MethodResult(
                statistic=math.nan,
                p_value=math.nan if self.is_test else None,
                effect_size=math.nan,
                bound=0.0,
                n_reference=pair.n_reference,
                n_current=pair.n_current,
            )
        if isinstance(pair, NumericPair):
            if ColumnKind.NUMERIC not in self.kinds:
                raise IncompatibleMethodError(self.name, "numeric", feature)
            return self.numeric(pair)
        if ColumnKind.CATEGORICAL not in self.kinds:
            raise IncompatibleMethodError(self.name, "categorical", feature)
        return self.categorical(pair)

    def numeric(self, pair: NumericPair) -> MethodResult:
        """Compare two numeric distributions (override when ``kinds`` has numeric)."""
        raise IncompatibleMethodError(self.name, "numeric", "")

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Compare two categorical distributions (override when ``kinds`` has categorical)."""
        raise IncompatibleMethodError(self.name, "categorical", "")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REGISTRY: dict[str, type[DriftMethod]] = {}
M = TypeVar("M", bound=type[DriftMethod])


def register(cls: M) -> M:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"drift method name {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_method(name: str) -> DriftMethod:
    """Return a new instance of the method registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UnknownMethodError(name, _REGISTRY) from None


def method_names(kind: ColumnKind | None = None) -> list[str]:
    """Return the registered method names, optionally only those supporting ``kind``."""
    return sorted(n for n, cls in _REGISTRY.items() if kind is None or kind in cls.kinds)


# ---- helpers shared by several methods -------------------------------------------------


def proportions(counts: IntArray) -> FloatArray:
    """Return ``counts`` as fractions of their total."""
    return np.asarray(counts / counts.sum(), dtype=np.float64)


def cdf_gap(pair: NumericPair) -> FloatArray:
    """Return ``F_ref(e) - F_cur(e)`` at every finite bin edge."""
    f = np.cumsum(pair.reference)[:-1] / pair.n_reference
    g = np.cumsum(pair.current)[:-1] / pair.n_current
    return np.asarray(f - g, dtype=np.float64)


def ks_distance(pair: NumericPair) -> float:
    """Return the Kolmogorov-Smirnov distance evaluated at the bin edges."""
    gap = cdf_gap(pair)
    return float(np.max(np.abs(gap))) if gap.size else 0.0


def total_variation(pair: CategoricalPair) -> float:
    """Return the total variation distance between the two category distributions."""
    return float(0.5 * np.abs(proportions(pair.reference) - proportions(pair.current)).sum())


def result(
    pair: Pair,
    statistic: float,
    p_value: float | None,
    effect_size: float,
    bound: float = 0.0,
) -> MethodResult:
    """Build a :class:`MethodResult` for ``pair``, as plain floats."""
    return MethodResult(
        statistic=float(statistic),
        p_value=None if p_value is None else float(p_value),
        effect_size=float(effect_size),
        bound=float(bound),
        n_reference=pair.n_reference,
        n_current=pair.n_current,
    )

"""The drift-method extension point: the base classes and the registry :data:`DRIFT_METHODS`.

A method compares a reference and a current distribution given as a
:class:`~detectors.pairs.NumericPair` or :class:`~detectors.pairs.CategoricalPair`
and returns a :class:`MethodResult`. Adding a method is one module in this
package defining a subclass of :class:`NumericMethod` and/or
:class:`CategoricalMethod` decorated with ``@DRIFT_METHODS.register``, its
import in ``detectors/methods/__init__.py``, and its tests (see
:mod:`detectors`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from detectors._arrays import FloatArray, IntArray

# Re-exported: the methods share these helpers with the effect sizes.
from detectors.effect import cdf_gap as cdf_gap
from detectors.effect import effect_size as effect_size
from detectors.effect import ks_distance as ks_distance
from detectors.effect import total_variation as total_variation
from detectors.errors import IncompatibleMethodError
from detectors.kinds import ColumnKind
from detectors.pairs import CategoricalPair, NumericPair, Pair
from detectors.registry import Registry


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodResult:
    """What one method found for one feature.

    ``statistic`` is the method's value; ``p_value`` is set for hypothesis
    tests and ``None`` for distances. ``effect_size`` is a sample-size-free
    size of the change, the same whatever the method (see
    :mod:`detectors.effect`): the Kolmogorov-Smirnov distance for numeric and
    ordinal features, the total variation distance for nominal ones; the
    materiality rule compares it with ``min_effect_size``. ``bound`` bounds ``|statistic - exact|``,
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
    """Base class of every drift method: what callers use, and the rules every method shares.

    Callers use :meth:`compare` and the class attributes below. A method
    subclasses :class:`NumericMethod` and/or :class:`CategoricalMethod`, whose
    abstract hooks (:meth:`numeric`, :meth:`categorical`) it implements;
    ``kinds`` lists exactly the kinds whose hook it implements.

    An abstract base class rather than a ``Protocol``: :meth:`compare` holds
    behaviour every method must share, not only a signature -- the NaN result
    on an empty side, the dispatch on the pair's kind and the
    :class:`~detectors.errors.IncompatibleMethodError` for a kind the method
    does not support -- and the ABC refuses to build a method that lacks the
    hook of a kind it claims. A Protocol would leave each method to repeat
    those rules.
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
        """Compare two numeric distributions (abstract in :class:`NumericMethod`)."""
        raise IncompatibleMethodError(self.name, "numeric", "")

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Compare two categorical distributions (abstract in :class:`CategoricalMethod`)."""
        raise IncompatibleMethodError(self.name, "categorical", "")

    @classmethod
    def supports(cls, kind: ColumnKind) -> bool:
        """Return whether this method compares columns of ``kind``."""
        return kind in cls.kinds

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class NumericMethod(DriftMethod):
    """A drift method for numeric columns: implements :meth:`numeric`."""

    kinds = frozenset({ColumnKind.NUMERIC})

    @abstractmethod
    def numeric(self, pair: NumericPair) -> MethodResult:
        """Compare the binned reference and current values of ``pair``; neither side is empty."""


class CategoricalMethod(DriftMethod):
    """A drift method for categorical columns: implements :meth:`categorical`."""

    kinds = frozenset({ColumnKind.CATEGORICAL})

    @abstractmethod
    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Compare the category counts of ``pair``; neither side is empty."""


#: Every drift method by the name used in config files and output (``"ks"``, ``"psi"``, ...).
DRIFT_METHODS: Registry[DriftMethod] = Registry(DriftMethod, kind="drift method")


# ---- helpers shared by several methods -------------------------------------------------


def proportions(counts: IntArray) -> FloatArray:
    """Return ``counts`` as fractions of their total."""
    return np.asarray(counts / counts.sum(), dtype=np.float64)


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

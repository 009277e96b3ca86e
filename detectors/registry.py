"""One generic registry: the classes of one family of detectors, by canonical name.

Every family (drift methods, online change detectors, multivariate methods)
has one :class:`Registry` instance, built by this same class, beside its base
class: :data:`detectors.methods.DRIFT_METHODS`,
:data:`detectors.online.ONLINE_DETECTORS` and
:data:`detectors.multivariate.MULTIVARIATE_METHODS`. A class joins its
family's registry with the ``@REGISTRY.register`` decorator under its ``name``
class attribute, the name users write in config files and read in the JSON
output (``"ks"``, ``"adwin"``, ``"pca_reconstruction"``): one naming scheme,
lowercase words joined by underscores.

A registry is a read-only mapping from names to classes, iterated in sorted
order; :meth:`Registry.create` builds an instance:

>>> from detectors.methods import DRIFT_METHODS
>>> DRIFT_METHODS["ks"].__name__, "ks" in DRIFT_METHODS, "kolmogorov" in DRIFT_METHODS
('KolmogorovSmirnov', True, False)
>>> DRIFT_METHODS.create("psi").default_threshold
0.2
>>> DRIFT_METHODS.create("kolmogorov")
Traceback (most recent call last):
...
detectors.errors.UnknownMethodError: unknown drift method 'kolmogorov'; available: \
anderson_darling, chi_square, cramer_von_mises, g_test, hellinger, jensen_shannon, ks, psi, \
total_variation, wasserstein
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from detectors.errors import UnknownMethodError

#: The one naming scheme: lowercase letters and digits, words joined by single underscores.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


class Named(Protocol):
    """What the registry needs of a class: its canonical name as a class attribute."""

    name: ClassVar[str]


T = TypeVar("T", bound=Named)


class Registry(Mapping[str, type[T]], Generic[T]):
    """The concrete subclasses of ``base`` by canonical name; one instance per family.

    ``kind`` names one member in messages (``"drift method"``); ``error`` is
    the :class:`~detectors.errors.UnknownMethodError` subclass (a
    ``KeyError``) raised for an unknown name, whose message lists the
    registered names. Registration refuses, with the reason: a class that is
    not a subclass of ``base``, an abstract class, a ``name`` outside
    :data:`NAME_PATTERN`, and a name already taken by another class.

    >>> class Scorer:
    ...     name: ClassVar[str]
    >>> SCORERS = Registry(Scorer, kind="scorer")
    >>> @SCORERS.register
    ... class Mean(Scorer):
    ...     name = "mean"
    >>> list(SCORERS), SCORERS.create("mean").name
    (['mean'], 'mean')
    >>> class Other(Scorer):
    ...     name = "mean"
    >>> SCORERS.register(Other)
    Traceback (most recent call last):
    ...
    ValueError: scorer name 'mean' is registered twice (Mean and Other)
    """

    def __init__(
        self,
        # ``type``, not ``type[T]``: mypy refuses an abstract class for ``type[T]``.
        base: type,
        *,
        kind: str,
        error: type[UnknownMethodError] = UnknownMethodError,
    ) -> None:
        self.base = base
        self.kind = kind
        self.error = error
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: make ``cls`` available under ``cls.name``; return it unchanged."""
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(
                f"a {self.kind} must be a subclass of {self.base.__name__}; got {cls!r}"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
            raise TypeError(
                f"{cls.__name__} is abstract (implement {missing}); it cannot be a {self.kind}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"{cls.__name__}.name must be lowercase words joined by underscores "
                f"(like 'page_hinkley'); got {name!r}"
            )
        known = self._classes.get(name)
        if known is not None and known is not cls:
            raise ValueError(
                f"{self.kind} name {name!r} is registered twice "
                f"({known.__name__} and {cls.__name__})"
            )
        self._classes[name] = cls
        return cls

    def __getitem__(self, name: str) -> type[T]:
        """Return the class registered as ``name``; raise ``error`` listing the names if none is."""
        try:
            return self._classes[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise self.error(str(name), self._classes, self.kind) from None

    def __iter__(self) -> Iterator[str]:
        """Iterate over the registered names in sorted order."""
        return iter(sorted(self._classes))

    def __len__(self) -> int:
        """Return the number of registered classes."""
        return len(self._classes)

    def create(self, name: str, /, **params: Any) -> T:
        """Return a new instance of the class registered as ``name``, built with ``params``."""
        return self[name](**params)

    def names(self, where: Callable[[type[T]], bool] | None = None) -> list[str]:
        """Return the registered names, sorted; only those whose class passes ``where`` if given."""
        return [name for name in self if where is None or where(self._classes[name])]

    def __repr__(self) -> str:
        return f"Registry({self.base.__name__}, kind={self.kind!r}, names={self.names()!r})"

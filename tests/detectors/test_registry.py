"""The generic registry and the three registries built from it.

The family checks run over every registry: each concrete subclass of a
family's base is registered (so a module written but not imported in its
package's ``__init__`` fails here) and exported by name from that package, and
the names users write in config files stay exactly as they are.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, ClassVar

import pytest

import detectors.methods
import detectors.multivariate
import detectors.online
from detectors.errors import UnknownDetectorError, UnknownMethodError
from detectors.registry import Registry

#: Each family's package and registry, and the names config files and JSON output use.
FAMILIES: dict[str, tuple[ModuleType, Registry[Any], list[str]]] = {
    "drift method": (
        detectors.methods,
        detectors.methods.DRIFT_METHODS,
        [
            "anderson_darling",
            "chi_square",
            "cramer_von_mises",
            "g_test",
            "hellinger",
            "jensen_shannon",
            "ks",
            "psi",
            "total_variation",
            "wasserstein",
        ],
    ),
    "change detector": (
        detectors.online,
        detectors.online.ONLINE_DETECTORS,
        ["adwin", "cusum", "ddm", "kswin", "page_hinkley"],
    ),
    "multivariate method": (
        detectors.multivariate,
        detectors.multivariate.MULTIVARIATE_METHODS,
        ["domain_classifier", "mmd", "pca_reconstruction"],
    ),
}


def concrete_subclasses(base: type) -> set[type]:
    """Every non-abstract class below ``base``, at any depth."""
    found: set[type] = set()
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if not inspect.isabstract(sub):
                found.add(sub)
    return found


@pytest.mark.parametrize("kind", FAMILIES)
def test_config_names_are_unchanged(kind: str):
    """The registered names are the ones configs and output already use, sorted."""
    _, registry, names = FAMILIES[kind]
    assert registry.names() == list(registry) == names
    assert len(registry) == len(names)
    assert registry.kind == kind


@pytest.mark.parametrize("kind", FAMILIES)
def test_every_concrete_class_is_registered_and_exported(kind: str):
    """A concrete subclass not imported in the package's __init__ would be missing here."""
    package, registry, _ = FAMILIES[kind]
    defined = {
        cls
        for cls in concrete_subclasses(registry.base)
        if cls.__module__.startswith(f"{package.__name__}.")
    }
    assert defined == set(registry.values())
    for name, cls in registry.items():
        assert cls.name == name
        assert cls.__name__ in package.__all__, f"{cls.__name__} is not in {package.__name__}"
        assert getattr(package, cls.__name__) is cls


@pytest.mark.parametrize("kind", FAMILIES)
def test_unknown_name_is_a_key_error_listing_the_known_names(kind: str):
    """One error shape for every family: a KeyError naming the kind and every known name."""
    _, registry, names = FAMILIES[kind]
    with pytest.raises(UnknownMethodError) as raised:
        registry.create("no_such_name")
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == f"unknown {kind} 'no_such_name'; available: {', '.join(names)}"
    assert raised.value.available == names
    assert "no_such_name" not in registry
    assert registry.get("no_such_name") is None


def test_online_detectors_raise_their_own_error_class():
    """``UnknownDetectorError`` (a subclass of UnknownMethodError) keeps working for callers."""
    with pytest.raises(UnknownDetectorError):
        detectors.online.ONLINE_DETECTORS["eddm"]


@pytest.mark.parametrize("kind", FAMILIES)
def test_create_returns_a_new_instance_of_the_registered_class(kind: str):
    """``create`` builds a fresh instance each time; ``registry[name]`` is the class."""
    _, registry, names = FAMILIES[kind]
    first, second = registry.create(names[0]), registry.create(names[0])
    assert type(first) is registry[names[0]]
    assert first is not second


# ---- the Registry class itself, on a toy family ---------------------------------------------


class Scorer:
    """A toy family base."""

    name: ClassVar[str]

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale


def fresh() -> Registry[Scorer]:
    """An empty registry of scorers."""
    return Registry(Scorer, kind="scorer")


def test_register_returns_the_class_and_create_passes_parameters():
    scorers = fresh()

    @scorers.register
    class Mean(Scorer):
        name = "mean"

    assert scorers["mean"] is Mean
    made = scorers.create("mean", scale=2.0)
    assert isinstance(made, Mean)
    assert made.scale == 2.0
    assert repr(scorers) == "Registry(Scorer, kind='scorer', names=['mean'])"


def test_registering_the_same_class_twice_is_harmless_but_a_taken_name_is_refused():
    scorers = fresh()

    class Mean(Scorer):
        name = "mean"

    class Average(Scorer):
        name = "mean"

    scorers.register(Mean)
    scorers.register(Mean)
    with pytest.raises(ValueError, match=r"'mean' is registered twice \(Mean and Average\)"):
        scorers.register(Average)
    assert scorers["mean"] is Mean


@pytest.mark.parametrize("name", ["Mean", "page-hinkley", "2x", "a__b", "trailing_", "", None])
def test_names_outside_the_one_scheme_are_refused(name: object):
    scorers = fresh()
    cls = type("Bad", (Scorer,), {"name": name})
    with pytest.raises(ValueError, match=r"Bad\.name must be lowercase words"):
        scorers.register(cls)


def test_a_class_of_another_family_or_an_abstract_class_is_refused():
    from abc import ABC, abstractmethod

    scorers = fresh()

    class Stranger:
        name = "stranger"

    with pytest.raises(TypeError, match="must be a subclass of Scorer"):
        scorers.register(Stranger)  # type: ignore[arg-type]

    class Unfinished(Scorer, ABC):
        name = "unfinished"

        @abstractmethod
        def score(self) -> float:
            """Not implemented."""

    with pytest.raises(TypeError, match=r"Unfinished is abstract \(implement score\)"):
        scorers.register(Unfinished)
    assert len(scorers) == 0


def test_names_filter_and_unhashable_lookups():
    scorers = fresh()
    for name in ("b_max", "a_min", "c_mean"):
        scorers.register(type(name.title(), (Scorer,), {"name": name}))
    assert list(scorers) == ["a_min", "b_max", "c_mean"]
    assert scorers.names(lambda cls: cls.name.endswith(("min", "max"))) == ["a_min", "b_max"]
    with pytest.raises(UnknownMethodError, match="unknown scorer"):
        scorers[["a_min"]]  # type: ignore[index]

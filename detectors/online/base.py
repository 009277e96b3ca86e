"""The online change-detector extension point: one base class and :data:`ONLINE_DETECTORS`.

A change detector reads a stream of numbers one at a time (an error indicator,
a score, a feature value) and says after each one whether the stream's
distribution has changed. Every detector here keeps memory bounded by its
parameters, never by the length of the stream (each module states its bound),
so the service can keep one per model and persist it between windows with
:meth:`ChangeDetector.state_dict` / :meth:`ChangeDetector.from_state`.

Conventions shared by every detector, the same as River's ``DriftDetector``:

* :meth:`~ChangeDetector.update` returns ``True`` when a change is detected at
  this value, and :attr:`~ChangeDetector.drift_detected` repeats that answer
  until the next update.
* After a detection the next update starts again from empty statistics (as if
  the stream began there), so one change is reported once. :attr:`n_seen` and
  :attr:`n_detections` keep counting across these restarts; only
  :meth:`~ChangeDetector.reset` zeroes them.
* A value that is not a finite real number (NaN, +/-inf, a string) raises
  :class:`~detectors.errors.InvalidParameterError` naming ``x`` and leaves the
  detector exactly as it was, so the caller decides whether to skip it or stop.
  Silently skipping would hide a broken score feed; folding a NaN into a
  running mean would disable the detector for good (River does the latter).

Adding a detector is one module in this package defining a subclass decorated
with ``@ONLINE_DETECTORS.register``, its import in
``detectors/online/__init__.py``, and its tests (see :mod:`detectors`).
"""

from __future__ import annotations

import inspect
import math
import numbers
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

import numpy as np

from detectors.errors import InvalidParameterError, UnknownDetectorError, check_version
from detectors.errors import check_int as check_int  # re-exported for the detectors
from detectors.errors import check_real as check_real  # re-exported for the detectors
from detectors.registry import Registry

#: ``format`` field of serialised detector state.
STATE_FORMAT = "driftline.change_detector"
#: Version of that format written by :meth:`ChangeDetector.state_dict`.
STATE_VERSION = 1


class ChangeDetector(ABC):
    """Base class of every online change detector.

    Subclasses store their constructor arguments unchanged as public
    attributes, validate them, then call ``super().__init__()``; they create
    their running statistics (underscore attributes of plain types: numbers,
    lists, deques, a ``random.Random``) only in :meth:`_reset_state`, and
    implement :meth:`update`.

    Saving and restoring a detector between windows:

    >>> from detectors.online import ONLINE_DETECTORS
    >>> detector = ONLINE_DETECTORS.create("page_hinkley", threshold=5.0)
    >>> [detector.update(x) for x in (0.0, 0.0, 1.0)]
    [False, False, False]
    >>> saved = detector.state_dict()
    >>> saved["format"], saved["version"], saved["detector"], saved["params"]["threshold"]
    ('driftline.change_detector', 1, 'page_hinkley', 5.0)
    >>> restored = ChangeDetector.from_state(saved)
    >>> restored, restored.n_seen
    (PageHinkley(min_instances=30, delta=0.005, threshold=5.0, alpha=0.9999, mode='both'), 3)
    """

    #: Registry name (``"adwin"``, ``"page_hinkley"``, ...).
    name: ClassVar[str]

    def __init__(self) -> None:
        self.reset()

    @abstractmethod
    def update(self, x: float) -> bool:
        """Feed one value; return ``True`` when a change is detected at it."""

    # ---- shared state ---------------------------------------------------------------

    @property
    def n_seen(self) -> int:
        """Number of values accepted since construction or the last :meth:`reset`."""
        return self._n_seen

    @property
    def n_detections(self) -> int:
        """Number of changes detected since construction or the last :meth:`reset`."""
        return self._n_detections

    @property
    def drift_detected(self) -> bool:
        """Whether the last update detected a change (``False`` before any update)."""
        return self._drift_detected

    def reset(self) -> None:
        """Forget everything seen: the detector behaves as if freshly constructed."""
        self._n_seen = 0
        self._n_detections = 0
        self._drift_detected = False
        self._reset_state()

    def _reset_state(self) -> None:  # noqa: B027 - optional hook, not an abstract method
        """Rebuild the detector's own statistics; called by :meth:`reset` and after a detection.

        Subclasses create every underscore attribute here, so that one method
        defines the running state that :meth:`state_dict` saves.
        """

    def _start_update(self, x: float) -> float:
        """Validate ``x``, restart after a detection, count it; return it as a float.

        Every subclass's :meth:`update` calls this first; it raises before
        changing anything when ``x`` is not a finite real number.
        """
        if not isinstance(x, numbers.Real | np.bool_) or not math.isfinite(x):
            raise InvalidParameterError("x", "a finite real number", x)
        if self._drift_detected:
            self._reset_state()
        self._n_seen += 1
        return float(x)

    def _finish_update(self, detected: bool) -> bool:
        """Record the outcome of the update in progress and return it."""
        self._drift_detected = detected
        if detected:
            self._n_detections += 1
        return detected

    # ---- parameters and persistence -------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        """Return the constructor arguments as given, by name."""
        names = [
            p.name
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.name != "self"
        ]
        return {name: getattr(self, name) for name in names}

    def state_dict(self) -> dict[str, Any]:
        """Return a versioned, JSON-serialisable dict of parameters and running state.

        The running state is every underscore attribute (the convention that
        keeps it apart from the parameters), so a detector needs no code of its
        own to be saved. :meth:`from_state` rebuilds a detector that continues
        exactly where this one is: the same values fed to both give the same
        detections.
        """
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "detector": self.name,
            "params": {key: _encode(value) for key, value in self.get_params().items()},
            "state": {key: _encode(value) for key, value in sorted(self._runtime().items())},
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a detector from :meth:`state_dict` output.

        Called on :class:`ChangeDetector` it rebuilds whichever registered
        detector ``data`` names; called on a subclass it also checks that
        ``data`` is that detector's state. A newer format version raises
        :class:`~detectors.errors.StateVersionError`; state whose fields are not
        those of the detector raises :class:`~detectors.errors.InvalidParameterError`.
        """
        check_version(data, STATE_FORMAT, STATE_VERSION)
        target = ONLINE_DETECTORS[str(data.get("detector"))]
        if not issubclass(target, cls):
            raise InvalidParameterError("detector", f"{cls.name!r}", data.get("detector"))
        detector = target(**data["params"])
        fresh = detector._runtime()
        state = data["state"]
        if sorted(state) != sorted(fresh):
            expected = ", ".join(sorted(fresh))
            raise InvalidParameterError("state", f"a mapping of {expected}", sorted(state))
        for key, value in state.items():
            setattr(detector, f"_{key}", _decode(value, like=fresh[key]))
        return detector

    def _runtime(self) -> dict[str, object]:
        """Return the running state: every underscore attribute, by name without the underscore."""
        return {key[1:]: value for key, value in vars(self).items() if key.startswith("_")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


#: Every online change detector by the name used in config files (``"adwin"``, ...).
ONLINE_DETECTORS: Registry[ChangeDetector] = Registry(
    ChangeDetector, kind="change detector", error=UnknownDetectorError
)


def _encode(value: object) -> object:
    """Return ``value`` as JSON types: deques become lists, a ``random.Random`` its state.

    numpy scalars (a parameter given as ``np.float64(0.01)``) become Python numbers.
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, random.Random):
        version, internal, gauss_next = value.getstate()
        return {"version": version, "internal": list(internal), "gauss_next": gauss_next}
    if isinstance(value, list | tuple | deque):
        return [_encode(item) for item in value]
    return value


def _decode(value: Any, like: object) -> object:
    """Invert :func:`_encode`, taking the type from ``like`` (the fresh detector's attribute).

    Lists (and deques) hold floats, or lists of floats, at any depth.
    """
    if isinstance(like, random.Random):
        generator = random.Random()
        generator.setstate((value["version"], tuple(value["internal"]), value["gauss_next"]))
        return generator
    if isinstance(like, deque):
        return deque(_floats(value), maxlen=like.maxlen)
    if isinstance(like, list):
        return _floats(value)
    if isinstance(like, bool):
        return bool(value)
    if isinstance(like, int):
        return int(value)
    if isinstance(like, float):
        return float(value)
    return value


def _floats(values: Iterable[Any]) -> list[Any]:
    """Return nested lists of floats from nested sequences of numbers."""
    return [_floats(v) if isinstance(v, list | tuple) else float(v) for v in values]


# ---- parameter validation ------------------------------------------------------------------
# check_int and check_real live in detectors.errors (shared with the other detector packages)
# and are re-exported above for the online detectors that import them from here.


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise."""
    allowed = list(choices)
    if not isinstance(value, str) or value not in allowed:
        raise InvalidParameterError(name, "one of " + ", ".join(map(repr, allowed)), value)
    return value

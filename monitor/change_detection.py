"""Online change detection inside one window: where a model's score or error rate changed.

The window drift tests compare a whole window with the reference and say *that*
it differs. The online change detectors of :mod:`detectors.online` (ADWIN,
Page-Hinkley, DDM, KSWIN, CUSUM) read a stream one value at a time and say
*where* its distribution changed. This module runs the detectors that a
model's :class:`ChangeDetectionSection` names over two streams of one window
and returns a JSON-ready dict for the window summary's ``details``: use it to
find a change inside a window (a deployment at 14:20, an upstream feed that
broke halfway), which a window-level test only shows as a window that differs
on the whole, and whose onset it cannot place.

The streams
    ``score``
        The scores of the window's stored predictions (labelled or not), in
        event-time order (:meth:`monitor.store.Store.window_scores`); build
        the points with :func:`score_points`.
    ``error``
        One value per labelled prediction (:meth:`monitor.store.Store.joined`),
        in event-time order; build the points with :func:`error_points`. For
        ``prediction.task: classification`` it is 1.0 when the predicted label
        differs from the true label and 0.0 when it is right, labels being
        compared as :func:`monitor.quality.stored_label` writes them (as the
        window's ``accuracy`` does: ``"1.0"`` equals ``"1"``, ``"True"`` is
        ``true``); a row without a predicted label has no value. For
        ``regression`` it is the absolute error ``|prediction - label|``, the
        prediction being the score, or the predicted label as a number when
        there is no score (as the window's ``mae``); a row whose label or
        prediction is not a finite number has no value.

    Both need the model's predictions stored, i.e. ``labels.enabled`` and
    records with a ``request_id``; the error stream also needs labels, so it
    grows as late labels arrive and the window is re-evaluated.

Points
    A point is ``(event_time, value)``. Values that are ``None`` or not finite
    are skipped (counted as ``skipped``). ``event_time`` may be ``None`` when the
    caller does not have it (:meth:`~monitor.store.Store.window_scores` and
    :meth:`~monitor.store.Store.joined` return no event times): a change is
    then reported by its index only.
    Points are fed in the order given, which must be event-time order (the
    store's order).

One detector run per window
    Every detector starts fresh on each window and each stream, and nothing
    is carried from one window to the next, although detectors can save
    their state (:meth:`~detectors.online.ChangeDetector.state_dict`). Windows
    are evaluated independently: by whichever process claims them, in any
    order, hopping windows share predictions, and a window is evaluated
    again when late labels arrive. State carried across windows would make
    a window's result depend on which windows happened to be evaluated
    before it, and a re-evaluation would feed the same points twice; run
    fresh, the same stored data always gives the same result. The cost:
    every window pays each detector's warm-up (``min_instances``,
    ``grace_period``, ``window_size``), so a change in its first values is
    found late or not at all, and a change exactly at a window boundary
    looks like a stationary window; the window drift tests cover those.

``max_points``
    At most this many points of a stream (after skipping) are fed, the most
    recent ones: the oldest are dropped and counted as ``dropped``. The most
    recent rather than a thinned sample because a contiguous run of the
    stream keeps the detectors' false-alarm and delay guarantees, which are
    per value and assume consecutive values (thinning would change the
    meaning of ``clock``, ``min_instances``, ``window_size``...), and the end
    of a window is what an alert about it concerns. It bounds the time of an
    evaluation: detectors cost from about 1 microsecond a value (Page-Hinkley,
    CUSUM) to about 35 (KSWIN).

Determinism
    A detector that draws random numbers (KSWIN, any constructor with a
    ``seed``) gets ``seed = 0`` (:data:`DEFAULT_SEED`) unless its parameters
    give one, so the same window always gives the same detections.

The result of :func:`change_points`::

    {
      "max_points": 100000,
      "parameters": {"adwin": {"delta": 0.002, ...}, ...},  # every parameter used
      "streams": {
        "error": {
          "points": 1843,          # points fed to the detectors
          "skipped": 2,            # None or non-finite values
          "dropped": 0,            # oldest points beyond max_points
          "first_event_time": ..., "last_event_time": ...,  # of the points fed
          "detectors": {
            "adwin": {
              "points": 1843,      # values the detector accepted
              "changes": [{"index": 1055, "event_time": 1718000455.0}],
              "n_changes": 1,
              "detected": true
            }, ...
          }
        }, ...
      }
    }

``index`` counts from 0 at the first point fed (so from ``dropped`` among the
stream's non-skipped points). ``changes`` lists at most
:data:`MAX_LISTED_CHANGES` changes, the earliest; ``n_changes`` counts all. A
detector that refuses a value (DDM reads only 0/1 values, so not a regression
error stream) stops there and gets an ``"error"`` message; the
configuration refuses it on the score stream already, and
:meth:`ChangeDetectionSection.check_task` on a regression error stream.

>>> section = ChangeDetectionSection(
...     detectors=["page_hinkley"],
...     streams=["error"],
...     parameters={"page_hinkley": {"threshold": 5.0, "mode": "up"}},
... )
>>> errors = [(1000.0 + i, 1.0 if i >= 200 and i % 2 else 0.0) for i in range(300)]
>>> result = change_points(section, errors=errors)
>>> found = result["streams"]["error"]["detectors"]["page_hinkley"]
>>> found["points"], found["detected"], found["changes"]
(300, True, [{'index': 211, 'event_time': 1211.0}])
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from detectors.errors import InvalidParameterError
from detectors.online import ONLINE_DETECTORS, ChangeDetector, UnknownDetectorError

if TYPE_CHECKING:
    # Types only: monitor.config may import this module for the section, and
    # monitor.quality imports monitor.config (see error_points).
    from monitor.config import PredictionSection
    from monitor.store.rows import JoinedPrediction

__all__ = [
    "DEFAULT_SEED",
    "MAX_LISTED_CHANGES",
    "STREAMS",
    "ChangeDetectionSection",
    "Point",
    "StreamName",
    "change_points",
    "error_points",
    "score_points",
]

#: A stream the detectors can read (see the module docstring).
StreamName: TypeAlias = Literal["score", "error"]
#: Every stream, in the order results are reported.
STREAMS: Final[tuple[StreamName, ...]] = ("score", "error")
#: ``(event_time, value)``; either may be None (no time known; no value: skipped).
Point: TypeAlias = tuple[float | None, float | None]
#: Seed given to a detector that draws random numbers when its parameters give none.
DEFAULT_SEED: Final = 0
#: Changes listed per detector and stream; ``n_changes`` counts them all.
MAX_LISTED_CHANGES: Final = 100


def _not_boolean(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("must be a number (or a string, as Page-Hinkley's mode), not a boolean")
    return value


#: A detector parameter: a number, or a string (Page-Hinkley's ``mode``); never a boolean.
ParameterValue: TypeAlias = Annotated[
    StrictInt | StrictFloat | StrictStr, BeforeValidator(_not_boolean)
]


class ChangeDetectionSection(BaseModel):
    """Which online change detectors run over which streams of each window.

    ``detectors``
        Names of registered online change detectors
        (:data:`detectors.online.ONLINE_DETECTORS`: ``adwin``, ``cusum``,
        ``ddm``, ``kswin``, ``page_hinkley``), each listed once. The default,
        ADWIN and Page-Hinkley, both have few false alarms at their default
        parameters and read any real-valued stream.
    ``streams``
        ``score`` and/or ``error`` (module docstring), each listed once;
        default both. Every detector runs on every stream listed. DDM reads
        only 0/1 values, so it is refused with the score stream (list it with
        ``streams: [error]`` for a classifier).
    ``parameters``
        Keyword parameters per detector, by detector name, e.g.
        ``{"page_hinkley": {"threshold": 20, "mode": "up"}}``; a detector not
        named here runs with its defaults. Each set is checked by building the
        detector, so an unknown parameter or a value out of range is an error
        of this section naming the detector and the parameter. Thresholds are
        in units of the stream (Page-Hinkley's ``threshold`` of 50 suits
        neither a 0..1 score nor a 0/1 error stream on short windows:
        lower it). Booleans are refused rather than read as 0/1.
    ``max_points``
        The most points of a stream fed per window: the most recent ones
        (module docstring); default 100,000.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    detectors: list[str] = Field(default_factory=lambda: ["adwin", "page_hinkley"], min_length=1)
    streams: list[StreamName] = Field(default_factory=lambda: list(STREAMS), min_length=1)
    parameters: dict[str, dict[str, ParameterValue]] = Field(default_factory=dict)
    max_points: int = Field(100_000, ge=1)

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                ONLINE_DETECTORS[name]
            except UnknownDetectorError as error:
                raise ValueError(str(error)) from None
        _refuse_repeats("detectors", value)
        return value

    @field_validator("streams")
    @classmethod
    def _distinct_streams(cls, value: list[StreamName]) -> list[StreamName]:
        _refuse_repeats("streams", value)
        return value

    @model_validator(mode="after")
    def _parameters_build_detectors(self) -> ChangeDetectionSection:
        for name, params in self.parameters.items():
            if name not in self.detectors:
                raise ValueError(
                    f"parameters are given for change detector {name!r}, which is not in "
                    f"detectors ({', '.join(self.detectors)}): add it there or remove its "
                    "parameters"
                )
            accepted = _parameter_names(name)
            for key in params:
                if key not in accepted:
                    raise ValueError(
                        f"unknown parameter {key!r} of change detector {name!r}; "
                        f"its parameters: {', '.join(accepted)}"
                    )
            try:
                self.build(name)
            except InvalidParameterError as error:
                raise ValueError(f"parameters of change detector {name!r}: {error}") from None
        if "score" in self.streams:
            binary = [name for name in self.detectors if self._reads_only_indicators(name)]
            if binary:
                raise ValueError(
                    f"{', '.join(binary)} reads only 0/1 error indicators, not scores: "
                    "list it with streams: [error] only, or remove it"
                )
        return self

    def detector_parameters(self, name: str) -> dict[str, Any]:
        """Return the keyword arguments detector ``name`` is built with.

        Its ``parameters``, plus ``seed = DEFAULT_SEED`` when its constructor
        takes a seed and none is given.
        """
        params: dict[str, Any] = dict(self.parameters.get(name, {}))
        if "seed" in _parameter_names(name) and "seed" not in params:
            params["seed"] = DEFAULT_SEED
        return params

    def build(self, name: str) -> ChangeDetector:
        """Return a new detector ``name`` with its :meth:`detector_parameters`."""
        return ONLINE_DETECTORS.create(name, **self.detector_parameters(name))

    def check_task(self, task: str) -> None:
        """Raise ``ValueError`` if a detector cannot read the error stream of ``task``.

        A regression model's error stream is an absolute error, which a
        detector reading only 0/1 values (DDM) refuses. The section alone does
        not know the task: call this from the model's configuration, with
        ``prediction.task``.
        """
        if task == "classification" or "error" not in self.streams:
            return
        binary = [name for name in self.detectors if self._reads_only_indicators(name)]
        if binary:
            raise ValueError(
                f"{', '.join(binary)} reads only 0/1 error indicators, but the error stream "
                f"of a {task} model is an absolute error: remove it"
            )

    def _reads_only_indicators(self, name: str) -> bool:
        """Whether detector ``name`` refuses a value other than 0 and 1 (DDM does)."""
        try:
            self.build(name).update(0.5)
        except InvalidParameterError:
            return True
        return False


def score_points(
    scores: Sequence[float | None], event_times: Sequence[float | None] | None = None
) -> list[Point]:
    """Return the score stream's points: ``scores`` paired with their event times.

    ``scores`` are in event-time order, as
    :meth:`monitor.store.Store.window_scores` returns them; ``event_times``
    are theirs, or None when they are not known (every point then has
    ``None`` as its time). ``None`` and non-finite scores are kept here and
    skipped (and counted) by :func:`change_points`.
    """
    return list(zip(_times(event_times, len(scores)), scores, strict=True))


def error_points(
    prediction: PredictionSection,
    joined: Sequence[JoinedPrediction],
    event_times: Sequence[float | None] | None = None,
) -> list[Point]:
    """Return the error stream's points from a window's labelled predictions.

    ``joined`` are the rows of :meth:`monitor.store.Store.joined` (in event-time
    order); ``event_times`` are theirs, or None when they are not known. The
    value of a row is its error as the module docstring defines it for
    ``prediction.task``, or ``None`` when it has none (skipped and counted by
    :func:`change_points`).
    """
    # Imported here: monitor.quality imports monitor.config, which may import this module.
    from monitor.quality import label_number, stored_label

    times = _times(event_times, len(joined))
    points: list[Point] = []
    if prediction.task == "classification":
        for t, row in zip(times, joined, strict=True):
            if row.predicted_label is None:
                points.append((t, None))
            else:
                right = stored_label(row.predicted_label) == stored_label(row.label)
                points.append((t, 0.0 if right else 1.0))
        return points
    for t, row in zip(times, joined, strict=True):
        target = label_number(row.label)
        predicted = row.score if row.score is not None else label_number(row.predicted_label)
        if target is None or predicted is None or not math.isfinite(predicted):
            points.append((t, None))
        else:
            points.append((t, abs(predicted - target)))
    return points


def change_points(
    section: ChangeDetectionSection,
    *,
    scores: Sequence[Point] = (),
    errors: Sequence[Point] = (),
) -> dict[str, Any]:
    """Run ``section``'s detectors over a window's streams; return the JSON-ready result.

    ``scores`` and ``errors`` are the points of the score and error streams
    (:func:`score_points`, :func:`error_points`), in event-time order; only
    the streams ``section`` lists are run, and a listed stream given no
    points reports none. Each detector is built fresh for each stream. The
    result's layout is in the module docstring.
    """
    given: dict[StreamName, Sequence[Point]] = {"score": scores, "error": errors}
    return {
        "max_points": section.max_points,
        "parameters": {name: section.build(name).get_params() for name in section.detectors},
        "streams": {
            stream: _run_stream(section, given[stream])
            for stream in STREAMS
            if stream in section.streams
        },
    }


def _run_stream(section: ChangeDetectionSection, points: Sequence[Point]) -> dict[str, Any]:
    """Feed one stream's most recent finite points to every detector of ``section``."""
    finite = [(t, float(x)) for t, x in points if x is not None and math.isfinite(x)]
    fed = finite[-section.max_points :]
    return {
        "points": len(fed),
        "skipped": len(points) - len(finite),
        "dropped": len(finite) - len(fed),
        "first_event_time": fed[0][0] if fed else None,
        "last_event_time": fed[-1][0] if fed else None,
        "detectors": {name: _run_detector(section.build(name), fed) for name in section.detectors},
    }


def _run_detector(
    detector: ChangeDetector, points: Sequence[tuple[float | None, float]]
) -> dict[str, Any]:
    """Feed ``points`` to ``detector``; return its changes (stopping at a value it refuses)."""
    changes: list[dict[str, Any]] = []
    refused = None
    for index, (t, x) in enumerate(points):
        try:
            detected = detector.update(x)
        except InvalidParameterError as error:
            refused = f"{error} at index {index}; the values after it were not read"
            break
        if detected and len(changes) < MAX_LISTED_CHANGES:
            changes.append({"index": index, "event_time": t})
    result: dict[str, Any] = {
        "points": detector.n_seen,
        "changes": changes,
        "n_changes": detector.n_detections,
        "detected": detector.n_detections > 0,
    }
    if refused is not None:
        result["error"] = refused
    return result


def _parameter_names(name: str) -> list[str]:
    """The constructor parameters of the detector registered as ``name``, in order."""
    cls = ONLINE_DETECTORS[name]
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def _refuse_repeats(field: str, values: Sequence[str]) -> None:
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{field} lists {', '.join(map(repr, repeated))} more than once")


def _times(event_times: Sequence[float | None] | None, count: int) -> Sequence[float | None]:
    """``event_times``, checked to have ``count`` entries, or ``count`` Nones."""
    if event_times is None:
        return [None] * count
    if len(event_times) != count:
        raise ValueError(f"{len(event_times)} event times for {count} values")
    return event_times

"""Online change detection inside one window: where a model's score or error rate changed.

The window drift tests compare a whole window with the reference and say *that*
it differs. The online change detectors of :mod:`detectors.online` (ADWIN,
Page-Hinkley, DDM, KSWIN, CUSUM) read a stream one value at a time and say
*where* its distribution changed. This module runs the detectors that a
model's ``change_detection`` section
(:class:`~monitor.config.change_detection.ChangeDetectionSection`) names over
two streams of one window and returns a JSON-ready dict for the window
summary's ``details``: use it to find a change inside a window (a deployment
at 14:20, an upstream feed that broke halfway), which a window-level test only
shows as a window that differs on the whole, and whose onset it cannot place.

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
        compared as :func:`monitor.labels.stored_label` writes them (as the
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
    ``seed``) gets ``seed = 0``
    (:data:`~monitor.config.change_detection.DEFAULT_SEED`) unless its
    parameters give one, so the same window always gives the same detections.

The result of :func:`change_points`, a
:class:`~detectors.window_result.ChangeDetection`, as the store keeps it
(:func:`monitor.store.result_json.change_detection_json`)::

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
:meth:`~monitor.config.change_detection.ChangeDetectionSection.check_task` on a
regression error stream.

>>> section = ChangeDetectionSection(
...     detectors=["page_hinkley"],
...     streams=["error"],
...     parameters={"page_hinkley": {"threshold": 5.0, "mode": "up"}},
... )
>>> errors = [(1000.0 + i, 1.0 if i >= 200 and i % 2 else 0.0) for i in range(300)]
>>> result = change_points(section, errors=errors)
>>> found = result.streams["error"].detectors["page_hinkley"]
>>> found.points, found.detected, found.changes
(300, True, (ChangePoint(index=211, event_time=1211.0),))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TypeAlias

from detectors.errors import InvalidParameterError
from detectors.online import ChangeDetector
from detectors.window_result import ChangeDetection, ChangePoint, DetectorChanges, StreamChanges
from monitor.config.change_detection import STREAMS, ChangeDetectionSection, StreamName
from monitor.labels import label_number, stored_label

if TYPE_CHECKING:
    # Types only: importing this module does not load monitor.config.service (kafka, yaml).
    from monitor.config.service import PredictionSection
    from monitor.store.rows import JoinedPrediction

__all__ = [
    "MAX_LISTED_CHANGES",
    "Point",
    "change_points",
    "error_points",
    "score_points",
]

#: ``(event_time, value)``; either may be None (no time known; no value: skipped).
Point: TypeAlias = tuple[float | None, float | None]
#: Changes listed per detector and stream; ``n_changes`` counts them all.
MAX_LISTED_CHANGES: Final = 100


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
) -> ChangeDetection:
    """Run ``section``'s detectors over a window's streams; return what they found.

    ``scores`` and ``errors`` are the points of the score and error streams
    (:func:`score_points`, :func:`error_points`), in event-time order; only
    the streams ``section`` lists are run, and a listed stream given no
    points reports none. Each detector is built fresh for each stream. The
    stored layout is in the module docstring.
    """
    given: dict[StreamName, Sequence[Point]] = {"score": scores, "error": errors}
    return ChangeDetection(
        max_points=section.max_points,
        parameters={name: section.build(name).get_params() for name in section.detectors},
        streams={
            stream: _run_stream(section, given[stream])
            for stream in STREAMS
            if stream in section.streams
        },
    )


def _run_stream(section: ChangeDetectionSection, points: Sequence[Point]) -> StreamChanges:
    """Feed one stream's most recent finite points to every detector of ``section``."""
    finite = [(t, float(x)) for t, x in points if x is not None and math.isfinite(x)]
    fed = finite[-section.max_points :]
    return StreamChanges(
        points=len(fed),
        skipped=len(points) - len(finite),
        dropped=len(finite) - len(fed),
        first_event_time=fed[0][0] if fed else None,
        last_event_time=fed[-1][0] if fed else None,
        detectors={name: _run_detector(section.build(name), fed) for name in section.detectors},
    )


def _run_detector(
    detector: ChangeDetector, points: Sequence[tuple[float | None, float]]
) -> DetectorChanges:
    """Feed ``points`` to ``detector``; return its changes (stopping at a value it refuses)."""
    changes: list[ChangePoint] = []
    refused = None
    for index, (t, x) in enumerate(points):
        try:
            detected = detector.update(x)
        except InvalidParameterError as error:
            refused = f"{error} at index {index}; the values after it were not read"
            break
        if detected and len(changes) < MAX_LISTED_CHANGES:
            changes.append(ChangePoint(index=index, event_time=t))
    return DetectorChanges(
        points=detector.n_seen,
        changes=tuple(changes),
        n_changes=detector.n_detections,
        detected=detector.n_detections > 0,
        error=refused,
    )


def _times(event_times: Sequence[float | None] | None, count: int) -> Sequence[float | None]:
    """``event_times``, checked to have ``count`` entries, or ``count`` Nones."""
    if event_times is None:
        return [None] * count
    if len(event_times) != count:
        raise ValueError(f"{len(event_times)} event times for {count} values")
    return event_times

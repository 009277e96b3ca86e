"""Online change detection over a window's streams (monitor/analyses/change_detection.py).

Every detection is checked for equality with running the same detector of
:mod:`detectors.online` directly over the same values, so the service adds no
arithmetic of its own; on seeded streams with a known change point the change
is found after it within a bounded delay, at the event time of the point where
it is found, and streams without a change give no detection for ADWIN and
Page-Hinkley at their defaults (no false alarm over 20,000 values in
tests/detectors/test_online.py; CUSUM, DDM and KSWIN have a few per thousand).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.online import ONLINE_DETECTORS
from monitor.analyses import change_detection
from monitor.analyses.change_detection import MAX_LISTED_CHANGES, Point, error_points, score_points
from monitor.config.change_detection import DEFAULT_SEED, ChangeDetectionSection
from monitor.config.service import PredictionSection
from monitor.store.result_json import change_detection_from_json, change_detection_json
from monitor.store.rows import JoinedPrediction


def change_points(section: ChangeDetectionSection, **streams: Any) -> dict[str, Any]:
    """The detectors' findings as the store keeps them (a typed result through its mapper)."""
    found = change_detection.change_points(section, **streams)
    stored = change_detection_json(found)
    assert change_detection_from_json(stored) == found  # the mapper loses nothing
    return stored


#: First changed value of the error streams (2,000 values) and of the score streams (3,000).
ERROR_CHANGE = 1000
SCORE_CHANGE = 1500
#: Event time of the first point; points are half a second apart.
T0 = 1_718_000_000.0
#: Defaults of the section, the detectors with few false alarms at their defaults.
QUIET = ("adwin", "page_hinkley")

CLASSIFIER = PredictionSection(task="classification")
REGRESSOR = PredictionSection(task="regression")


def event_times(n: int) -> list[float]:
    """Event times of ``n`` points, half a second apart from :data:`T0`."""
    return [T0 + 0.5 * i for i in range(n)]


def error_values(seed: int, change: bool = True, n: int = 2000) -> list[float]:
    """0/1 errors at rate 10%, becoming 40% at :data:`ERROR_CHANGE` when ``change``."""
    rng = np.random.default_rng([seed, 1])
    rate = np.where((np.arange(n) >= ERROR_CHANGE) & change, 0.4, 0.1)
    return (rng.random(n) < rate).astype(np.float64).tolist()


def score_values(seed: int, change: bool = True, n: int = 3000) -> list[float]:
    """Scores Beta(2, 5) (mean 0.29), becoming Beta(4, 4) (mean 0.5) at :data:`SCORE_CHANGE`."""
    rng = np.random.default_rng([seed, 2])
    before = rng.beta(2.0, 5.0, n)
    after = rng.beta(4.0, 4.0, n)
    return np.where((np.arange(n) >= SCORE_CHANGE) & change, after, before).tolist()


def timed(values: list[float]) -> list[Point]:
    """``values`` as points at :func:`event_times`."""
    return list(zip(event_times(len(values)), values, strict=True))


def direct(name: str, values: list[float], **params: Any) -> list[int]:
    """Indices at which detector ``name`` of detectors.online detects a change in ``values``."""
    detector = ONLINE_DETECTORS.create(name, **params)
    return [i for i, x in enumerate(values) if detector.update(x)]


def found(result: dict[str, Any], stream: str, name: str) -> dict[str, Any]:
    """The result of detector ``name`` on ``stream``."""
    entry: dict[str, Any] = result["streams"][stream]["detectors"][name]
    return entry


def indices(entry: dict[str, Any]) -> list[int]:
    return [change["index"] for change in entry["changes"]]


# ---- detections: equal to the library's, after the change, at its event time ----------------


@pytest.mark.parametrize("seed", range(5))
def test_error_rate_rise_is_found_after_the_change(seed: int):
    values = error_values(seed)
    times = event_times(len(values))
    result = change_points(ChangeDetectionSection(streams=["error"]), errors=timed(values))
    assert list(result["streams"]) == ["error"]
    stream = result["streams"]["error"]
    assert (stream["points"], stream["skipped"], stream["dropped"]) == (2000, 0, 0)
    assert (stream["first_event_time"], stream["last_event_time"]) == (times[0], times[-1])
    for name in QUIET:
        entry = found(result, "error", name)
        assert indices(entry) == direct(name, values)
        first = indices(entry)[0]
        # Measured first detections on seeds 0-4: ADWIN 1055-1087, Page-Hinkley 1141-1221.
        assert ERROR_CHANGE <= first <= ERROR_CHANGE + 300, name
        assert entry["changes"][0]["event_time"] == times[first]
        assert entry["detected"] is True
        assert entry["points"] == 2000
        assert entry["n_changes"] == len(entry["changes"])


@pytest.mark.parametrize("seed", range(5))
def test_score_mean_shift_is_found_after_the_change(seed: int):
    values = score_values(seed)
    times = event_times(len(values))
    result = change_points(ChangeDetectionSection(streams=["score"]), scores=timed(values))
    for name in QUIET:
        entry = found(result, "score", name)
        assert indices(entry) == direct(name, values)
        first = indices(entry)[0]
        # Measured: ADWIN 1567-1599, Page-Hinkley (threshold 50 on a 0..1 scale) 1713-1780.
        assert SCORE_CHANGE <= first <= SCORE_CHANGE + 350, name
        assert entry["changes"][0]["event_time"] == times[first]


@pytest.mark.parametrize("seed", range(3))
def test_no_change_gives_no_detection_for_adwin_and_page_hinkley(seed: int):
    errors = error_values(seed, change=False, n=5000)
    scores = score_values(seed, change=False, n=5000)
    result = change_points(ChangeDetectionSection(), scores=timed(scores), errors=timed(errors))
    for stream in ("score", "error"):
        for name in QUIET:
            entry = found(result, stream, name)
            assert entry == {"points": 5000, "changes": [], "n_changes": 0, "detected": False}


@pytest.mark.parametrize("name", ONLINE_DETECTORS.names())
def test_every_detector_gives_the_library_detections_and_parameters(name: str):
    # DDM reads 0/1 values: the error stream; the others also run on scores.
    streams = ["error"] if name == "ddm" else ["score", "error"]
    params: dict[str, dict[str, float | int | str]] = {
        "adwin": {"delta": 0.01, "clock": 8},
        "page_hinkley": {"threshold": 10.0, "mode": "up"},
        "cusum": {"min_instances": 50, "h": 8},
        "kswin": {"alpha": 0.001},
        "ddm": {"warm_start": 50},
    }
    section = ChangeDetectionSection(
        detectors=[name], streams=streams, parameters={name: params[name]}
    )
    errors, scores = error_values(7), score_values(7)
    result = change_points(section, scores=timed(scores), errors=timed(errors))
    used = {**params[name], **({"seed": DEFAULT_SEED} if name == "kswin" else {})}
    assert result["parameters"] == {name: ONLINE_DETECTORS.create(name, **used).get_params()}
    assert indices(found(result, "error", name)) == direct(name, errors, **used)
    assert found(result, "error", name)["detected"]
    if name != "ddm":
        assert indices(found(result, "score", name)) == direct(name, scores, **used)


def test_kswin_is_seeded_so_a_window_always_gives_the_same_result():
    section = ChangeDetectionSection(detectors=["kswin"], streams=["score"])
    scores = timed(score_values(3))
    first = change_points(section, scores=scores)
    assert first["parameters"]["kswin"]["seed"] == DEFAULT_SEED == 0
    assert first == change_points(section, scores=scores)
    chosen = ChangeDetectionSection(
        detectors=["kswin"], streams=["score"], parameters={"kswin": {"seed": 11}}
    )
    entry = found(change_points(chosen, scores=scores), "score", "kswin")
    assert indices(entry) == direct("kswin", score_values(3), seed=11)


def test_each_window_runs_fresh_detectors():
    # The result of a window does not depend on the windows evaluated before it.
    section = ChangeDetectionSection()
    window_b = {"scores": timed(score_values(1)), "errors": timed(error_values(1))}
    alone = change_points(section, **window_b)
    change_points(section, scores=timed(score_values(2)), errors=timed(error_values(2)))
    assert change_points(section, **window_b) == alone


def test_result_is_strict_json():
    values = error_values(0)
    errors = [(None, v) for v in values]  # no event times known
    result = change_points(ChangeDetectionSection(), errors=errors)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    entry = found(result, "error", "adwin")
    assert entry["changes"][0] == {"index": direct("adwin", values)[0], "event_time": None}
    # The score stream is listed and was given no points.
    assert result["streams"]["score"]["points"] == 0
    assert found(result, "score", "adwin") == {
        "points": 0,
        "changes": [],
        "n_changes": 0,
        "detected": False,
    }


# ---- skipped values, max_points, the changes cap, refused values -----------------------------


def test_none_and_non_finite_values_are_skipped_and_counted():
    values = error_values(2)
    points: list[Point] = timed(values)
    holes = {5: None, 40: math.nan, 700: math.inf, 1500: -math.inf}
    for i, hole in holes.items():
        points[i] = (points[i][0], hole)
    result = change_points(ChangeDetectionSection(streams=["error"]), errors=points)
    stream = result["streams"]["error"]
    assert (stream["points"], stream["skipped"], stream["dropped"]) == (1996, 4, 0)
    kept = [i for i in range(len(values)) if i not in holes]
    times = event_times(len(values))
    for name in QUIET:
        entry = found(result, "error", name)
        assert indices(entry) == direct(name, [values[i] for i in kept])
        # The index counts fed points; the event time is that point's.
        assert [c["event_time"] for c in entry["changes"]] == [
            times[kept[i]] for i in indices(entry)
        ]


def test_max_points_feeds_the_most_recent_points():
    values = error_values(4, n=3000)
    times = event_times(3000)
    # The most recent 500 points are all after the change: nothing changes within them.
    tail = ChangeDetectionSection(streams=["error"], max_points=500)
    result = change_points(tail, errors=timed(values))
    stream = result["streams"]["error"]
    assert result["max_points"] == 500
    assert (stream["points"], stream["dropped"], stream["skipped"]) == (500, 2500, 0)
    assert (stream["first_event_time"], stream["last_event_time"]) == (times[2500], times[-1])
    for name in QUIET:
        assert indices(found(result, "error", name)) == direct(name, values[2500:]) == []
    # The most recent 2,200 start 200 points before the change at 1000 (index 200 of them).
    wider = ChangeDetectionSection(streams=["error"], max_points=2200)
    result = change_points(wider, errors=timed(values))
    for name in QUIET:
        entry = found(result, "error", name)
        assert indices(entry) == direct(name, values[800:])
        first = indices(entry)[0]
        assert 200 <= first <= 500
        assert entry["changes"][0]["event_time"] == times[800 + first]
    # Skipped values do not count towards max_points.
    holed: list[Point] = [(None, None)] * 10 + timed(values)
    assert change_points(wider, errors=holed)["streams"]["error"] == result["streams"]["error"] | {
        "skipped": 10
    }


def test_changes_listed_are_capped_and_counted():
    section = ChangeDetectionSection(
        detectors=["cusum"],
        streams=["score"],
        parameters={"cusum": {"min_instances": 2, "h": 0.5, "k": 0.0}},
    )
    values = score_values(0, change=False, n=5000)
    entry = found(change_points(section, scores=timed(values)), "score", "cusum")
    expected = direct("cusum", values, min_instances=2, h=0.5, k=0.0)
    assert len(expected) > MAX_LISTED_CHANGES
    assert indices(entry) == expected[:MAX_LISTED_CHANGES]
    assert entry["n_changes"] == len(expected)


def test_a_detector_that_refuses_a_value_reports_it_and_stops():
    # DDM reads 0/1 values; a regression error stream (absolute errors) is refused.
    section = ChangeDetectionSection(detectors=["ddm"], streams=["error"])
    errors: list[Point] = [(T0, 0.0), (T0 + 1, 1.0), (T0 + 2, 0.25), (T0 + 3, 0.0)]
    entry = found(change_points(section, errors=errors), "error", "ddm")
    assert entry["points"] == 2
    assert entry["detected"] is False
    assert entry["error"] == (
        "x must be 0 or 1 (an error indicator); got 0.25 at index 2; "
        "the values after it were not read"
    )
    with pytest.raises(ValueError, match="ddm reads only 0/1 error indicators"):
        section.check_task("regression")
    section.check_task("classification")
    ChangeDetectionSection().check_task("regression")  # ADWIN and Page-Hinkley read any value


# ---- the error and score streams from stored rows ------------------------------------------


def test_classification_errors_compare_canonical_labels():
    joined = [
        JoinedPrediction("1", 0.9, "1.0"),  # a label record's 1.0 is class 1: right
        JoinedPrediction("1", 0.8, "1"),
        JoinedPrediction("True", 0.7, "True"),  # booleans: right
        JoinedPrediction("True", 0.7, "1"),  # "true" is not "1": wrong
        JoinedPrediction("0", 0.6, "1"),
        JoinedPrediction(None, 0.6, "1"),  # no predicted label: no error value
        JoinedPrediction("approve", None, "approve"),
        JoinedPrediction("approve", None, "reject"),
        JoinedPrediction("2.5", None, "2.5"),
    ]
    times = event_times(len(joined))
    assert error_points(CLASSIFIER, joined, times) == list(
        zip(times, [0.0, 0.0, 0.0, 1.0, 1.0, None, 0.0, 1.0, 0.0], strict=True)
    )
    assert [t for t, _ in error_points(CLASSIFIER, joined)] == [None] * len(joined)


def test_regression_errors_are_absolute_errors():
    joined = [
        JoinedPrediction(None, 2.5, "3"),
        JoinedPrediction("10", None, "7.5"),  # no score: the predicted label as a number
        JoinedPrediction("10", 4.0, "5"),  # a score wins over the predicted label
        JoinedPrediction(None, 1.0, "not a number"),  # unusable: no value
        JoinedPrediction(None, None, "3"),
        JoinedPrediction(None, math.nan, "3"),
        JoinedPrediction(None, -2.0, "nan"),
    ]
    assert [v for _, v in error_points(REGRESSOR, joined)] == [
        0.5,
        2.5,
        1.0,
        None,
        None,
        None,
        None,
    ]


def test_stored_rows_give_the_same_detections_as_their_error_indicators():
    errors = error_values(3)
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 2, len(errors))
    # The true label as label records may write it ("1.0"); predicted right unless an error.
    joined = [
        JoinedPrediction(str(int(t) ^ int(e)), None, f"{float(t)}" if i % 3 else str(t))
        for i, (t, e) in enumerate(zip(truth, errors, strict=True))
    ]
    times = event_times(len(joined))
    points = error_points(CLASSIFIER, joined, times)
    assert points == timed(errors)
    result = change_points(ChangeDetectionSection(streams=["error"]), errors=points)
    for name in QUIET:
        assert indices(found(result, "error", name)) == direct(name, errors)


def test_score_points_pair_scores_with_times():
    assert score_points([0.5, None, 0.25]) == [(None, 0.5), (None, None), (None, 0.25)]
    assert score_points([0.5, 0.25], [T0, T0 + 1]) == [(T0, 0.5), (T0 + 1, 0.25)]
    with pytest.raises(ValueError, match="3 event times for 2 values"):
        score_points([0.5, 0.25], [T0, T0 + 1, T0 + 2])
    with pytest.raises(ValueError, match="1 event times for 2 values"):
        error_points(CLASSIFIER, [JoinedPrediction("1", None, "1")] * 2, [T0])


# ---- configuration -------------------------------------------------------------------------


def test_defaults():
    section = ChangeDetectionSection()
    assert section.detectors == ["adwin", "page_hinkley"]
    assert section.streams == ["score", "error"]
    assert section.parameters == {}
    assert section.max_points == 100_000
    with pytest.raises(ValidationError):
        section.max_points = 10  # type: ignore[misc]


def test_parameters_from_a_config_mapping():
    section = ChangeDetectionSection.model_validate(
        {
            "detectors": ["page_hinkley", "kswin"],
            "streams": ["error"],
            "parameters": {"page_hinkley": {"threshold": 20, "mode": "up"}},
            "max_points": 5000,
        }
    )
    assert section.detector_parameters("page_hinkley") == {"threshold": 20, "mode": "up"}
    assert section.detector_parameters("kswin") == {"seed": DEFAULT_SEED}
    assert section.build("page_hinkley").get_params()["threshold"] == 20


def error_message(**fields: Any) -> str:
    with pytest.raises(ValidationError) as raised:
        ChangeDetectionSection(**fields)
    return str(raised.value)


def test_unknown_detector_lists_the_available_ones():
    assert (
        "unknown change detector 'eddm'; available: adwin, cusum, ddm, kswin, page_hinkley"
        in error_message(detectors=["adwin", "eddm"])
    )


def test_bad_parameter_value_names_the_detector_and_parameter():
    message = error_message(parameters={"adwin": {"delta": 2.0}})
    assert "parameters of change detector 'adwin': delta must be a number in (0, 1); got 2.0" in (
        message
    )
    message = error_message(detectors=["page_hinkley"], parameters={"page_hinkley": {"mode": "x"}})
    assert "change detector 'page_hinkley': mode must be one of 'up', 'down', 'both'" in message
    # YAML 1.1 reads 1e-3 as a string: refused by the detector, naming it.
    assert "delta must be a number in (0, 1); got '1e-3'" in error_message(
        parameters={"adwin": {"delta": "1e-3"}}
    )


def test_unknown_parameter_lists_the_detectors_parameters():
    assert (
        "unknown parameter 'threshold' of change detector 'adwin'; its parameters: delta, "
        "clock, max_buckets, min_window_length, grace_period"
        in error_message(parameters={"adwin": {"threshold": 3}})
    )


def test_boolean_parameter_is_refused():
    message = error_message(detectors=["cusum"], parameters={"cusum": {"k": True}})
    assert "parameters.cusum.k" in message
    assert "not a boolean" in message


def test_parameters_of_a_detector_not_listed_are_refused():
    assert (
        "parameters are given for change detector 'kswin', which is not in detectors "
        "(adwin, page_hinkley)" in error_message(parameters={"kswin": {"alpha": 0.01}})
    )


def test_ddm_is_refused_on_the_score_stream():
    assert "ddm reads only 0/1 error indicators, not scores" in error_message(
        detectors=["adwin", "ddm"]
    )
    ChangeDetectionSection(detectors=["adwin", "ddm"], streams=["error"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"detectors": []}, "at least 1 item"),
        ({"streams": []}, "at least 1 item"),
        ({"detectors": ["adwin", "adwin"]}, "detectors lists 'adwin' more than once"),
        ({"streams": ["error", "error"]}, "streams lists 'error' more than once"),
        ({"streams": ["latency"]}, "Input should be 'score' or 'error'"),
        ({"max_points": 0}, "greater than or equal to 1"),
        ({"window": 10}, "Extra inputs are not permitted"),
    ],
)
def test_other_invalid_sections(fields: dict[str, Any], expected: str):
    assert expected in error_message(**fields)


def test_importing_the_module_does_not_import_the_config():
    # The analysis module stays light: it loads neither monitor.config.service (kafka, yaml)
    # nor monitor.analyses.quality.
    code = (
        "import sys, monitor.analyses.change_detection; "
        "assert 'monitor.config.service' not in sys.modules; "
        "assert 'monitor.analyses.quality' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

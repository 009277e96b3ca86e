"""Window assignment, durations, watermarks and lateness (monitor/windows.py), on a fake clock."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.windows import PartitionProgress, Watermarks, WindowSpec, parse_duration


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- parse_duration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("1.5h", 5400.0),
        (" 2 m ", 120.0),
        ("45", 45.0),
        ("0s", 0.0),
        (90, 90.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration_accepts_units_and_plain_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-5m", "1h30m", "five", "5 mins", "1e3s"])
def test_parse_duration_rejects_bad_strings_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*ms, s, m, h or d"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, math.nan, math.inf, True, None, [5]])
def test_parse_duration_rejects_bad_numbers_and_types(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)  # type: ignore[arg-type]


# --- WindowSpec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"size_s": 0}, "size_s"),
        ({"size_s": -60}, "size_s"),
        ({"size_s": math.nan}, "size_s"),
        ({"size_s": 60, "hop_s": 0}, "hop_s"),
        ({"size_s": 60, "hop_s": -1}, "hop_s"),
        ({"size_s": 60, "hop_s": 61}, "hop_s"),
        ({"size_s": 60, "allowed_lateness_s": -1}, "allowed_lateness_s"),
        ({"size_s": 60, "allowed_lateness_s": math.inf}, "allowed_lateness_s"),
    ],
)
def test_window_spec_names_the_invalid_parameter(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ValueError, match=rf"^{parameter} must .*got"):
        WindowSpec(**kwargs)


def test_window_spec_is_frozen() -> None:
    spec = WindowSpec(60.0)
    with pytest.raises(AttributeError):
        spec.size_s = 30.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        (0.0, [(0.0, 60.0)]),  # start is inclusive
        (59.999, [(0.0, 60.0)]),
        (60.0, [(60.0, 120.0)]),  # end is exclusive
        (119.5, [(60.0, 120.0)]),
        (-0.001, [(-60.0, 0.0)]),  # before the epoch: still aligned to 0
        (-60.0, [(-60.0, 0.0)]),
        (-60.5, [(-120.0, -60.0)]),
        (1795338900.5, [(1795338900.0, 1795338960.0)]),
    ],
)
def test_tumbling_windows(event_time: float, expected: list[tuple[float, float]]) -> None:
    assert WindowSpec(60.0).windows_for(event_time) == expected


@pytest.mark.parametrize(
    ("event_time", "expected"),
    [
        (0.0, [(-45.0, 15.0), (-30.0, 30.0), (-15.0, 45.0), (0.0, 60.0)]),
        (14.999, [(-45.0, 15.0), (-30.0, 30.0), (-15.0, 45.0), (0.0, 60.0)]),
        (15.0, [(-30.0, 30.0), (-15.0, 45.0), (0.0, 60.0), (15.0, 75.0)]),
        (-15.0, [(-60.0, 0.0), (-45.0, 15.0), (-30.0, 30.0), (-15.0, 45.0)]),
    ],
)
def test_hopping_windows(event_time: float, expected: list[tuple[float, float]]) -> None:
    assert WindowSpec(60.0, hop_s=15.0).windows_for(event_time) == expected


def test_hop_that_does_not_divide_size() -> None:
    # Starts every 40 s, 100 s long: t=100 lies in [40, 140) and [80, 180) but not [0, 100).
    assert WindowSpec(100.0, hop_s=40.0).windows_for(100.0) == [(40.0, 140.0), (80.0, 180.0)]
    assert WindowSpec(100.0, hop_s=40.0).windows_for(120.0) == [
        (40.0, 140.0),
        (80.0, 180.0),
        (120.0, 220.0),
    ]


def test_hop_equal_to_size_is_tumbling() -> None:
    assert WindowSpec(60.0, hop_s=60.0).windows_for(61.0) == WindowSpec(60.0).windows_for(61.0)
    assert WindowSpec(60.0, hop_s=60.0).tumbling
    assert not WindowSpec(60.0, hop_s=30.0).tumbling


@pytest.mark.parametrize("event_time", [math.nan, math.inf, -math.inf])
def test_windows_for_rejects_non_finite_times(event_time: float) -> None:
    with pytest.raises(ValueError, match="event_time"):
        WindowSpec(60.0).windows_for(event_time)


@given(
    hop=st.sampled_from([0.25, 1.0, 15.0, 60.0, 300.0, 3600.0]),
    multiple=st.integers(min_value=1, max_value=24),
    event_time=st.floats(min_value=-1e10, max_value=1e10, allow_nan=False),
)
def test_every_event_is_in_exactly_size_over_hop_windows(
    hop: float, multiple: int, event_time: float
) -> None:
    spec = WindowSpec(size_s=hop * multiple, hop_s=hop)
    windows = spec.windows_for(event_time)
    assert len(windows) == multiple
    for start, end in windows:
        assert start <= event_time < end
        assert end - start == pytest.approx(spec.size_s)
        assert start / hop == pytest.approx(round(start / hop), abs=1e-6)  # aligned to the epoch
    starts = [start for start, _ in windows]
    assert starts == sorted(set(starts))


@given(
    size=st.floats(min_value=0.5, max_value=1e5),
    hop_share=st.floats(min_value=0.05, max_value=1.0),
    event_time=st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
)
def test_any_hop_windows_contain_the_event_and_none_is_missing(
    size: float, hop_share: float, event_time: float
) -> None:
    spec = WindowSpec(size_s=size, hop_s=size * hop_share)
    windows = spec.windows_for(event_time)
    for start, end in windows:
        assert start <= event_time < end
    starts = [start for start, _ in windows]
    rounding = 8 * math.ulp(abs(event_time) + size)  # of start times as large as these
    for earlier, later in itertools.pairwise(starts):
        assert later - earlier == pytest.approx(spec.step_s, rel=1e-9, abs=rounding)  # none skipped
    # A point lies in floor(size/hop) or ceil(size/hop) windows that start every hop.
    per_point = spec.size_s / spec.step_s
    assert math.floor(per_point - 1e-9) <= len(windows) <= math.ceil(per_point + 1e-9)
    assert windows


# --- Watermarks --------------------------------------------------------------------------------


def test_no_watermark_before_any_data() -> None:
    marks = Watermarks(WindowSpec(60.0), clock=FakeClock())
    assert marks.watermark() is None
    assert not marks.due(-1e12)
    assert not marks.is_late(-1e12)


def test_watermark_is_min_over_partitions_minus_lateness() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0, allowed_lateness_s=5.0), clock=clock)
    marks.observe(0, 100.0)
    marks.observe(1, 250.0)
    marks.observe(1, 200.0)  # out of order: the partition's maximum stays 250
    marks.observe(2, 180.0)
    assert marks.watermark() == 95.0
    marks.observe(0, 300.0)
    assert marks.watermark() == 175.0
    assert marks.progress()[1] == PartitionProgress(max_event_time=250.0, last_record_at=clock.now)


def test_idle_partitions_do_not_hold_the_watermark_back() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0), idle_timeout_s=30.0, clock=clock)
    marks.observe("slow", 100.0)
    clock.advance(20.0)
    marks.observe("busy", 500.0)
    assert marks.watermark() == 100.0
    clock.advance(10.0)  # "slow" silent for exactly the timeout: still active
    assert marks.watermark() == 100.0
    clock.advance(0.5)
    assert marks.watermark() == 500.0
    assert marks.watermark(idle_timeout_s=3600.0) == 500.0  # never goes back


def test_idle_timeout_can_be_given_per_call() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0), idle_timeout_s=3600.0, clock=clock)
    marks.observe("a", 100.0)
    clock.advance(10.0)
    marks.observe("b", 400.0)
    assert marks.watermark(idle_timeout_s=5.0) == 400.0
    assert (
        Watermarks.from_progress(
            WindowSpec(60.0), {"a": (100.0, clock.now - 10), "b": (400.0, clock.now)}, clock=clock
        ).watermark()
        == 100.0
    )


def test_all_partitions_idle_releases_the_last_windows() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0, allowed_lateness_s=10.0), idle_timeout_s=30.0, clock=clock)
    marks.observe(0, 100.0)
    marks.observe(1, 170.0)
    assert marks.watermark() == 90.0
    assert not marks.due(120.0)
    clock.advance(31.0)
    assert marks.watermark() == 160.0
    assert marks.due(120.0)


def test_watermark_never_moves_back_when_a_partition_wakes_up() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0), idle_timeout_s=30.0, clock=clock)
    marks.observe("a", 100.0)
    marks.observe("b", 1000.0)
    clock.advance(31.0)
    marks.observe("b", 1010.0)
    assert marks.watermark() == 1010.0
    marks.observe("a", 120.0)  # "a" is active again, far behind
    assert marks.watermark() == 1010.0
    assert marks.is_late(130.0)


def test_late_detection_uses_every_window_of_the_event() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0, hop_s=30.0, allowed_lateness_s=10.0), clock=clock)
    marks.observe(0, 100.0)  # watermark 90
    assert marks.watermark() == 90.0
    # t=29.9 is in [-30, 30) and [0, 60): both ended by 90 -> late.
    assert marks.is_late(29.9)
    # t=30 is in [0, 60) and [30, 90): [30, 90) ends exactly at the watermark -> late.
    assert marks.is_late(30.0)
    # t=60 is in [30, 90) and [60, 120): the second is still open.
    assert not marks.is_late(60.0)
    assert marks.due(90.0)
    assert not marks.due(90.001)


def test_allowed_lateness_keeps_windows_open() -> None:
    clock = FakeClock()
    strict = Watermarks(WindowSpec(60.0), clock=clock)
    lenient = Watermarks(WindowSpec(60.0, allowed_lateness_s=30.0), clock=clock)
    for marks in (strict, lenient):
        marks.observe(0, 75.0)
    assert strict.is_late(59.0)
    assert not lenient.is_late(59.0)
    lenient.observe(0, 90.0)
    assert lenient.is_late(59.0)


def test_load_merges_stored_progress_forward_only() -> None:
    clock = FakeClock()
    marks = Watermarks(WindowSpec(60.0), clock=clock)
    marks.observe(0, 500.0)
    marks.load({0: (100.0, clock.now - 100), 1: (300.0, clock.now - 1)})
    assert marks.progress() == {
        0: PartitionProgress(500.0, clock.now),
        1: PartitionProgress(300.0, clock.now - 1),
    }
    assert marks.watermark() == 300.0
    marks.reset()
    assert marks.watermark() is None
    assert marks.progress() == {}


def test_watermarks_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="idle_timeout_s"):
        Watermarks(WindowSpec(60.0), idle_timeout_s=0)
    marks = Watermarks(WindowSpec(60.0), clock=FakeClock())
    with pytest.raises(ValueError, match="event_time"):
        marks.observe(0, math.nan)

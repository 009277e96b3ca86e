"""The row sample: exact, order-free merges, round trips, keys, encoding, and its sketch wiring."""

from __future__ import annotations

import itertools
import json
import math
from functools import reduce

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from detectors.errors import IncompatibleSketchError, InvalidParameterError, StateVersionError
from detectors.kinds import ColumnKind
from detectors.profile import PROFILE_FORMAT_VERSION, ReferenceProfile
from detectors.sample import (
    DEFAULT_REFERENCE_SAMPLE_SIZE,
    SAMPLE_FORMAT_VERSION,
    RowSample,
    encode_frame,
    hash_ids,
    hash_rows,
    one_hot,
    row_keys,
)
from detectors.sketch import SKETCH_FORMAT_VERSION, WindowSketch

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)
KINDS = {"x": ColumnKind.NUMERIC, "c": ColumnKind.CATEGORICAL}

# ---- strategies ----------------------------------------------------------------------------

numeric_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, -0.0, 1.0, 2.5]),
    st.sampled_from([math.nan, math.inf, -math.inf, None]),
)
#: Labels of the reference ("a", "b", 1) and others; True, 1 and 1.0 are distinct or equal
#: labels exactly as in the sketches ("true" vs "1").
labels = st.sampled_from(["a", "b", "zz", 1, 1.0, True, 2.5, None, math.nan])
rows = st.tuples(numeric_values, labels)


def reference_profile() -> ReferenceProfile:
    """A profile of one numeric and one categorical feature (categories a, b, 1)."""
    reference = pd.DataFrame(
        {"x": [0.5, 1.5, 2.5, 3.5], "c": pd.Series(["a", "a", "b", 1], dtype=object)}
    )
    return ReferenceProfile.from_frame(reference, KINDS, bins=10)


PROFILE = reference_profile()


def frame_of(items: list[tuple[object, object]]) -> pd.DataFrame:
    """A frame with a float column x and an object column c."""
    return pd.DataFrame(
        {
            "x": pd.Series([x for x, _ in items], dtype=np.float64),
            "c": pd.Series([c for _, c in items], dtype=object),
        }
    )


@st.composite
def partitioned(draw: st.DrawFn) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """A frame and a split of its rows into parts (slices keep their index labels), shuffled."""
    whole = frame_of(draw(st.lists(rows, max_size=40)))
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), min_size=1, max_size=4)))
    bounds = [0, *cuts, len(whole)]
    parts = [whole.iloc[a:b] for a, b in itertools.pairwise(bounds)]
    return whole, draw(st.permutations(parts))


# ---- merge ----------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(data=partitioned(), size=st.integers(1, 12))
def test_merge_equals_sample_of_the_whole_in_any_order(data, size):
    """merge of the parts' samples == sample of the whole, whatever the partition and order."""
    whole, parts = data
    samples = [RowSample.from_frame(p, PROFILE.specs, size=size) for p in parts]
    expected = RowSample.from_frame(whole, PROFILE.specs, size=size)
    merged = reduce(RowSample.merge, samples)
    assert merged == expected
    assert reduce(RowSample.merge, reversed(samples)) == expected
    assert merged.rows == min(size, len(whole))
    assert merged.seen == len(whole)
    assert np.all(np.diff(merged.keys.astype(np.float64)) >= 0)


@PROPERTY_SETTINGS
@given(data=partitioned(), size=st.integers(1, 12))
def test_merge_with_explicit_keys(data, size):
    """Rows keyed by request ids merge exactly too, and the ids alone decide which rows stay."""
    whole, parts = data
    ids = {label: f"req-{label}" for label in whole.index}
    samples = [
        RowSample.from_frame(p, PROFILE.specs, size=size, keys=[ids[i] for i in p.index])
        for p in parts
    ]
    expected = RowSample.from_frame(
        whole, PROFILE.specs, size=size, keys=[ids[i] for i in whole.index]
    )
    assert reduce(RowSample.merge, samples) == expected
    kept = np.sort(hash_ids([ids[i] for i in whole.index]))[:size]
    assert np.array_equal(expected.keys, kept)


@PROPERTY_SETTINGS
@given(data=partitioned(), small=st.integers(1, 6), large=st.integers(6, 12))
def test_merging_different_sizes_keeps_the_smaller(data, small, large):
    """Merging a size-k sample with a larger one is the size-k sample of the union."""
    whole, parts = data
    sizes = [small if i % 2 else large for i in range(len(parts))]
    samples = [
        RowSample.from_frame(p, PROFILE.specs, size=s) for p, s in zip(parts, sizes, strict=True)
    ]
    expected_size = min(sizes)
    merged = reduce(RowSample.merge, samples)
    assert merged == RowSample.from_frame(whole, PROFILE.specs, size=expected_size)


def test_ties_are_broken_by_values():
    """Rows with the same key are ordered by their values, so arrival order does not matter."""
    values = np.array([[3.0], [1.0], [np.nan], [2.0]])
    keys = np.array([7, 7, 7, 5], dtype=np.uint64)
    forward = RowSample.from_rows(("x",), (None,), values, keys, size=3, hashed=True)
    backward = RowSample.from_rows(("x",), (None,), values[::-1], keys[::-1], size=3, hashed=True)
    assert forward == backward
    assert forward.values[:, 0].tolist() == [2.0, 1.0, 3.0]


def test_merge_of_different_features_is_refused():
    """Samples of different columns or category counts do not merge."""
    a = RowSample.empty(("x",), (None,))
    with pytest.raises(IncompatibleSketchError):
        a.merge(RowSample.empty(("y",), (None,)))
    with pytest.raises(IncompatibleSketchError):
        a.merge(RowSample.empty(("x",), (3,)))


# ---- what the sample holds ------------------------------------------------------------------


def test_sample_is_uniform_over_rows():
    """The kept rows are a uniform sample: their positions pass a KS test against uniform."""
    frame = pd.DataFrame({"x": np.arange(20_000, dtype=np.float64)})
    profile = ReferenceProfile.from_frame(frame.iloc[:100], {"x": "numeric"})
    sample = RowSample.from_frame(frame, profile.specs, size=1000)
    positions = sample.values[:, 0] / len(frame)
    assert stats.kstest(positions, "uniform").pvalue > 0.01


def test_duplicate_rows_do_not_cluster():
    """With the default keys (index label and values), repeated rows are sampled independently."""
    frame = pd.DataFrame({"c": np.tile(list("abcdefghij"), 1000)})
    profile = ReferenceProfile.from_frame(frame, {"c": "categorical"})
    sample = RowSample.from_frame(frame, profile.specs, size=500)
    counts = np.bincount(sample.values[:, 0].astype(int), minlength=10)
    assert counts.min() >= 25, counts  # 50 expected each; a clustered sample has ~1 level


def test_hashes_are_pinned():
    """The key functions never change: samples written by other processes must merge."""
    assert hash_ids(["req-1", "req-2"]).tolist() == [7403874687148386412, 12898346336386983851]
    assert hash_ids([0, 1]).tolist() == [16294208416658607535, 538020821241227815]
    assert hash_rows([[0.0, math.nan], [1.5, -2.0]]).tolist() == [
        1814273108235252734,
        12770258187108488126,
    ]


def test_row_hash_ignores_nan_payload_and_zero_sign():
    """-0.0 equals 0.0 and every NaN is the same missing value."""
    other_nan = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), dtype=np.float64)[0]
    assert hash_rows([[-0.0, other_nan]]).tolist() == hash_rows([[0.0, math.nan]]).tolist()


def test_row_keys_match_hash_of_encoded_rows():
    """row_keys hashes the index labels and the encoded values."""
    frame = frame_of([(1.0, "a"), (None, "zz"), (math.inf, None)])
    expected = hash_rows(encode_frame(frame, PROFILE.specs), hash_ids(frame.index))
    assert np.array_equal(row_keys(frame, PROFILE.specs), expected)


def test_encoding_of_rows():
    """Numeric values as floats (NaN if unusable); categorical codes by reference frequency."""
    frame = pd.DataFrame(
        {
            "x": pd.Series([1.5, None, math.inf, "oops", 2], dtype=object),
            "c": pd.Series(["a", "b", 1.0, "new", None], dtype=object),
        }
    )
    encoded = encode_frame(frame, PROFILE.specs)
    assert PROFILE.specs["c"].categories == ("a", "1", "b")
    np.testing.assert_array_equal(encoded[:, 0], [1.5, np.nan, np.nan, np.nan, 2.0])
    np.testing.assert_array_equal(encoded[:, 1], [0.0, 2.0, 1.0, 3.0, np.nan])


def test_one_hot_width_depends_on_levels_only():
    """A categorical column gives min(levels, max_levels) + 1 indicators; rare codes share one."""
    values = np.array([[0.0, 0.5], [4.0, 1.5], [np.nan, 2.5]])
    matrix = one_hot(values, [6, None], max_levels=3)
    assert matrix.shape == (3, 5)
    np.testing.assert_array_equal(matrix[:, :4], [[1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(matrix[:, 4], [0.5, 1.5, 2.5])
    with pytest.raises(InvalidParameterError, match="max_levels"):
        one_hot(values, [6, None], max_levels=0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param({"size": 0}, "size", id="size"),
        pytest.param({"levels": (None, None)}, "levels", id="levels"),
        pytest.param({"values": np.zeros((2, 2))}, "values", id="shape"),
        pytest.param({"seen": 0}, "keys", id="seen"),
    ],
)
def test_invalid_samples_are_refused(change, match):
    """Construction validates sizes and shapes and names the parameter."""
    fields = {
        "columns": ("x",),
        "levels": (None,),
        "size": 2,
        "keys": np.array([1, 2], dtype=np.uint64),
        "values": np.zeros((2, 1)),
        "seen": 2,
    }
    with pytest.raises(InvalidParameterError, match=match):
        RowSample(**{**fields, **change})


def test_from_rows_checks_keys_and_shape():
    """from_rows wants one key per row and one column per name."""
    with pytest.raises(InvalidParameterError, match="keys"):
        RowSample.from_rows(("x",), (None,), np.zeros((3, 1)), ["a", "b"])
    with pytest.raises(InvalidParameterError, match="values"):
        RowSample.from_rows(("x",), (None,), np.zeros((3, 2)), ["a", "b", "c"])
    with pytest.raises(InvalidParameterError, match="keys"):
        RowSample.from_frame(frame_of([(1.0, "a")]), PROFILE.specs, keys=["a", "b"])


# ---- serialisation --------------------------------------------------------------------------


def json_round_trip(data: dict) -> dict:
    """``data`` written to JSON text and read back."""
    return json.loads(json.dumps(data))


@PROPERTY_SETTINGS
@given(items=st.lists(rows, max_size=30), size=st.integers(1, 40))
def test_sample_round_trip(items, size):
    """to_dict/from_dict through JSON gives back an equal sample (NaN and -0.0 included)."""
    sample = RowSample.from_frame(frame_of(items), PROFILE.specs, size=size)
    assert RowSample.from_dict(json_round_trip(sample.to_dict())) == sample


def test_sample_version_and_format_are_checked():
    """A newer sample format is refused with the version error; a corrupt payload too."""
    data = RowSample.empty(("x",), (None,)).to_dict()
    with pytest.raises(StateVersionError):
        RowSample.from_dict({**data, "version": SAMPLE_FORMAT_VERSION + 1})
    with pytest.raises(IncompatibleSketchError):
        RowSample.from_dict({**data, "format": "driftline.sketch"})
    with pytest.raises(IncompatibleSketchError, match="values"):
        RowSample.from_dict({**data, "keys": "AAAAAAAAAAA="})


# ---- wiring into sketches and profiles ------------------------------------------------------


def test_window_sketch_carries_and_merges_its_sample():
    """profile.sketch(sample=True) keeps a sample; merges of sketches merge it exactly."""
    frame = frame_of([(float(i), "ab"[i % 2]) for i in range(50)])
    parts = [frame.iloc[:20], frame.iloc[20:]]
    a, b = (PROFILE.sketch(p, sample=True, sample_size=8) for p in parts)
    whole = PROFILE.sketch(frame, sample=True, sample_size=8)
    assert a.merge(b) == whole
    assert whole.sample is not None
    assert whole.sample.rows == 8
    assert PROFILE.empty_sketch().merge(a) == a
    assert a.merge(PROFILE.empty_sketch(sample=True, sample_size=8)) == a
    # A partial without a sample (an old writer) leaves the union without one.
    assert a.merge(PROFILE.sketch(parts[1])).sample is None
    assert PROFILE.sketch(frame).sample is None


def test_window_sketch_round_trip_with_sample():
    """A sketch with a sample round-trips through JSON; the sample is under "sample"."""
    sketch = PROFILE.sketch(frame_of([(1.0, "a"), (None, "zz")]), sample=True)
    data = json_round_trip(sketch.to_dict())
    assert data["version"] == SKETCH_FORMAT_VERSION == 2
    assert data["sample"]["format"] == RowSample.format
    assert WindowSketch.from_dict(PROFILE.specs, data) == sketch


def test_version_1_sketches_are_still_read():
    """A payload written before samples existed (format version 1) reads as a sketch without one."""
    sketch = PROFILE.sketch(frame_of([(1.0, "a"), (2.0, "b")]))
    old = {**sketch.to_dict(), "version": 1}
    assert "sample" not in old
    assert WindowSketch.from_dict(PROFILE.specs, old) == sketch


def test_sketch_sample_of_unknown_features_is_refused():
    """A stored sample naming features the profile does not have is an incompatible sketch."""
    data = PROFILE.sketch(frame_of([(1.0, "a")]), sample=True).to_dict()
    data["sample"]["columns"] = ["x", "other"]
    with pytest.raises(IncompatibleSketchError, match="other"):
        WindowSketch.from_dict(PROFILE.specs, data)


def test_profile_sample_is_optional_and_round_trips():
    """from_frame(sample=True) keeps up to 2,000 reference rows; old profiles still load."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(["a", "b"], 3000)})
    plain = ReferenceProfile.from_frame(frame)
    assert plain.sample is None
    sampled = ReferenceProfile.from_frame(frame, sample=True)
    assert sampled.sample is not None
    assert sampled.sample.rows == DEFAULT_REFERENCE_SAMPLE_SIZE
    assert sampled.sample.seen == 3000
    assert sampled.sample.columns == ("x", "c")
    assert sampled.sample.levels == (None, 2)
    assert ReferenceProfile.from_bytes(sampled.to_bytes()) == sampled
    assert sampled != plain
    old = plain.to_dict()
    old["reference"]["version"] = 1
    assert old["version"] == PROFILE_FORMAT_VERSION
    assert ReferenceProfile.from_dict(old) == plain


def test_keys_do_not_depend_on_column_dtype():
    """A part read as integers keys its rows as the float column of the whole frame does."""
    whole = pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", "b"]})
    ints = pd.DataFrame({"x": pd.Series([1, 2], dtype=np.int64), "c": ["a", "b"]})
    rest = whole.iloc[2:]
    merged = RowSample.from_frame(ints, PROFILE.specs, size=3).merge(
        RowSample.from_frame(rest, PROFILE.specs, size=3)
    )
    assert merged == RowSample.from_frame(whole, PROFILE.specs, size=3)

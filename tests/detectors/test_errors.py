"""The shared parameter checkers of ``detectors/errors.py`` and the callers that rely on them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.errors import InvalidParameterError, check_int, check_real
from detectors.multivariate import MULTIVARIATE_METHODS
from detectors.online import base as online_base
from detectors.sample import RowSample


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(3, id="int"),
        pytest.param(np.int64(3), id="np.int64"),
        pytest.param(np.int32(3), id="np.int32"),
        pytest.param(np.uint8(3), id="np.uint8"),
    ],
)
def test_check_int_accepts_integers_and_returns_a_plain_int(value: object):
    checked = check_int("folds", value, 2)
    assert checked == 3
    assert type(checked) is int


def test_check_int_accepts_the_minimum_itself():
    assert check_int("seed", 0, 0) == 0
    assert check_int("folds", np.int64(2), 2) == 2


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(True, id="True"),
        pytest.param(False, id="False"),
        pytest.param(np.bool_(True), id="np.bool_"),
        pytest.param(3.0, id="integral-float"),
        pytest.param(np.float64(3.0), id="np.float64"),
        pytest.param("3", id="str"),
        pytest.param(None, id="None"),
        pytest.param(1, id="below-minimum"),
        pytest.param(np.int64(-5), id="np.int64-below-minimum"),
    ],
)
def test_check_int_refuses_naming_the_parameter(value: object):
    with pytest.raises(InvalidParameterError) as raised:
        check_int("folds", value, 2)
    assert raised.value.name == "folds"
    assert raised.value.given is value
    assert str(raised.value) == f"folds must be an integer >= 2; got {value!r}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "alpha must be a number in (0, 1); got 0"),
        (1.5, "alpha must be a number in (0, 1); got 1.5"),
        (True, "alpha must be a number in (0, 1); got True"),
        (math.nan, "alpha must be a number in (0, 1); got nan"),
        ("0.05", "alpha must be a number in (0, 1); got '0.05'"),
    ],
)
def test_check_real_refuses_naming_the_parameter(value: object, message: str):
    with pytest.raises(InvalidParameterError) as raised:
        check_real("alpha", value, low=0, high=1, low_open=True, high_open=True)
    assert raised.value.name == "alpha"
    assert str(raised.value) == message


def test_check_real_returns_a_plain_float():
    checked = check_real("alpha", np.float32(0.5), low=0, high=1, low_open=True, high_open=True)
    assert checked == 0.5
    assert type(checked) is float


def test_online_base_still_exports_the_checkers():
    """Online detector modules import the checkers from ``detectors.online.base``."""
    assert online_base.check_int is check_int
    assert online_base.check_real is check_real


@pytest.mark.parametrize(
    ("name", "parameters"),
    [
        ("mmd", {"permutations": np.int64(50), "max_rows": np.int32(100), "seed": np.int64(3)}),
        ("domain_classifier", {"folds": np.int64(3), "permutations": np.uint16(10)}),
        ("domain_classifier", {"max_dims": np.int64(4)}),
        ("pca_reconstruction", {"bootstrap": np.int64(20)}),
    ],
)
def test_multivariate_methods_store_numpy_integers_as_plain_ints(name: str, parameters: dict):
    method = MULTIVARIATE_METHODS.create(name, **parameters)
    for parameter, value in parameters.items():
        stored = getattr(method, parameter)
        assert stored == value
        assert type(stored) is int


@pytest.mark.parametrize(
    ("name", "parameter", "value"),
    [
        ("mmd", "permutations", 10.0),
        ("mmd", "seed", True),
        ("domain_classifier", "folds", "5"),
        ("pca_reconstruction", "bootstrap", 0),
    ],
)
def test_multivariate_methods_refuse_non_integers(name: str, parameter: str, value: object):
    with pytest.raises(InvalidParameterError) as raised:
        MULTIVARIATE_METHODS.create(name, **{parameter: value})
    assert raised.value.name == parameter
    assert str(raised.value).startswith(f"{parameter} must be an integer >= ")


def test_row_sample_stores_a_numpy_size_as_a_plain_int():
    sample = RowSample.empty(("x",), (None,), size=np.int64(5))
    assert sample.size == 5
    assert type(sample.size) is int


@pytest.mark.parametrize("size", [0, 5.0, True, "5"])
def test_row_sample_refuses_a_non_integer_size(size: object):
    with pytest.raises(InvalidParameterError) as raised:
        RowSample.empty(("x",), (None,), size=size)  # type: ignore[arg-type]
    assert raised.value.name == "size"
    assert str(raised.value) == f"size must be an integer >= 1; got {size!r}"

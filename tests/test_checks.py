"""Argument checks: what they accept, and messages that echo the bad value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashion_utils import checks


@pytest.mark.parametrize("value, minimum", [(1, 1), (np.int64(5), 1), (0, 0), (8, 8)])
def test_positive_int_accepts_integers_at_or_above_the_minimum(value, minimum):
    out = checks.positive_int("n", value, minimum=minimum)
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -3, 1.0, True, "2", None])
def test_positive_int_refuses_and_echoes(value):
    with pytest.raises(ValueError, match=rf"n must be an integer >= 1\. Received: n={value!r}"):
        checks.positive_int("n", value)


def test_positive_int_may_allow_none():
    assert checks.positive_int("cap", None, allow_none=True) is None
    with pytest.raises(ValueError, match="or None. Received: cap=0"):
        checks.positive_int("cap", 0, allow_none=True)


def test_positive_int_values_keeps_the_order_and_names_the_bad_one():
    assert checks.positive_int_values(a=3, b=1, c=2) == (3, 1, 2)
    with pytest.raises(ValueError, match="b must be an integer >= 0. Received: b=-1"):
        checks.positive_int_values(a=0, b=-1, minimum=0)


@pytest.mark.parametrize("value, allow_zero, ok", [
    (0.5, False, True), (0, False, False), (0, True, True), (-1e-9, True, False),
    (float("inf"), False, False), (float("nan"), True, False), (True, False, False),
])
def test_positive_float(value, allow_zero, ok):
    if ok:
        assert checks.positive_float("lr", value, allow_zero=allow_zero) == float(value)
    else:
        with pytest.raises(ValueError, match="Received: lr="):
            checks.positive_float("lr", value, allow_zero=allow_zero)


@pytest.mark.parametrize("value, ok", [(0, True), (0.5, True), (1.0, False), (-0.1, False),
                                       (True, False)])
def test_rate(value, ok):
    if ok:
        assert checks.rate("dropout", value) == value
    else:
        with pytest.raises(ValueError, match=rf"dropout={value!r}"):
            checks.rate("dropout", value)


def test_positive_ints_names_the_bad_entry():
    assert checks.positive_ints("units", [50, np.int32(20)]) == (50, 20)
    assert checks.positive_ints("units", ()) == ()
    with pytest.raises(ValueError, match=r"units=\(50, 0\) \(bad entry: units=0\)"):
        checks.positive_ints("units", (50, 0))


def test_one_of_lists_the_choices():
    assert checks.one_of("kind", "random", ("random", "bayesian")) == "random"
    with pytest.raises(ValueError, match=r"kind must be one of \['random'\]. Received: kind='grid'"):
        checks.one_of("kind", "grid", ("random",))


def test_columns_present_names_what_is_missing():
    table = pd.DataFrame({"id": [1], "label": ["a"]})
    checks.columns_present(table, ["id"], "catalog")
    with pytest.raises(ValueError, match=r"catalog lacks column\(s\) \['image_path'\]"):
        checks.columns_present(table, ["id", "image_path"], "catalog")

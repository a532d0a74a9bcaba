"""How values, expectations and failing rows read in reasons (no database, no GX)."""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np

from ml_batch.validation.reasons import (
    GOT,
    MAX_LISTED,
    RowReason,
    between_text,
    detail,
    listing,
    nan_columns,
    row_reason,
    value_text,
)
from ml_batch.validation.suite import NUMERIC_TYPES


def test_nan_and_infinity_read_as_such_in_reasons() -> None:
    assert [value_text(v) for v in (None, float("nan"), float("inf"), float("-inf"), Decimal("NaN"),
                                    Decimal("-Infinity"), 2.5, "x", np.float64("nan"), np.int64(3))] == [
        "null", "NaN", "inf", "-inf", "NaN", "-inf", "2.5", "'x'", "NaN", "3"]


def test_a_row_reason_is_its_text_and_keeps_the_failing_value() -> None:
    nan = RowReason("x: expect_column_values_to_be_between (min 0, max 1), got NaN", "x", float("nan"))
    null = RowReason("y: expect_column_values_to_not_be_null, got null", "y", None)
    assert nan == "x: expect_column_values_to_be_between (min 0, max 1), got NaN"
    assert json.dumps([nan]) == json.dumps([str(nan)])
    assert (nan.column, nan.is_nan, null.is_nan) == ("x", True, False)
    assert nan_columns([nan, null, "z: a plain reason"]) == {"x"}


def test_a_failing_row_reads_its_values_and_a_category_as_its_canonical_text() -> None:
    one = row_reason("color: expect_column_values_to_be_in_set (allowed: '1')", {"id": 5, "color": 7.0},
                     ["color"], {"color"})
    assert one == f"color: expect_column_values_to_be_in_set (allowed: '1'){GOT}'7'"
    assert (one.column, one.value) == ("color", 7.0)
    pair = row_reason("a, b: expect_column_pair_values_a_to_be_greater_than_b", {"id": 5, "a": 1, "b": None},
                      ["a", "b"], set())
    assert pair == f"a, b: expect_column_pair_values_a_to_be_greater_than_b{GOT}a=1, b=null"
    assert (pair.column, pair.value) == (None, None)


def test_an_expectation_detail_names_its_parameters() -> None:
    between = "expect_column_values_to_be_between"
    assert detail(between, {"column": "x", "min_value": 0.0, "max_value": 1.5}, "id") == " (min 0, max 1.5)"
    assert detail(between, {"column": "x", "min_value": -math.inf, "strict_min": True, "max_value": math.inf,
                            "strict_max": True}, "id") == " (min > -inf, max < inf)"
    assert detail("expect_column_values_to_be_in_type_list", {"type_list": list(NUMERIC_TYPES)}, "id") == \
        " (numeric types)"
    assert detail("expect_column_values_to_be_unique", {"column": "id"}, "id") == " (key not unique)"
    assert detail("expect_column_max_to_be_between", {"column": "x", "max_value": 9.0, "batch_id": "b"}, "id") == \
        " (max_value 9)"


def test_a_long_listing_says_how_many_values_there_are() -> None:
    values = list(range(MAX_LISTED + 2))
    assert listing(values) == ", ".join(str(v) for v in values[:MAX_LISTED]) + f", ... ({MAX_LISTED + 2} in all)"
    assert (between_text(1, None), between_text(None, 5.0), between_text(None, None)) == (
        "at least 1", "at most 5", "any number")

"""The canonical category rule: one category per value, whatever type the driver gave it."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ml_batch.categories import MISSING_CATEGORY, category_counts, category_frame, category_series, category_text


@pytest.mark.parametrize(("value", "expected"), [
    (3, "3"), (np.int64(3), "3"), (3.0, "3"), (np.float64(3.0), "3"), (Decimal("3"), "3"), (Decimal("3.00"), "3"),
    (-0.0, "0"), (1e20, "100000000000000000000"), (3.5, "3.5"), (Decimal("3.50"), "3.5"), (0.1, "0.1"),
    (1e-07, "0.0000001"), (float("inf"), "inf"), (Decimal("-Infinity"), "-inf"), (True, "True"),
    (np.bool_(False), "False"), ("3.0", "3.0"), ("red", "red"), (None, MISSING_CATEGORY),
    (float("nan"), MISSING_CATEGORY), (Decimal("NaN"), MISSING_CATEGORY), (pd.NA, MISSING_CATEGORY),
    (pd.NaT, MISSING_CATEGORY),
])  # fmt: skip
def test_category_text_is_the_value_not_its_type(value: object, expected: str) -> None:
    assert category_text(value) == expected


def test_an_integer_column_reads_the_same_with_or_without_nulls_from_any_driver() -> None:
    ints = pd.Series([3, 4, 3], dtype="int64")  # ADBC, no NULL in the chunk
    floats = pd.Series([3.0, 4.0, 3.0, np.nan])  # ADBC or psycopg2 with a NULL: float64
    nullable = pd.Series([3, 4, 3, None], dtype="Int64")
    decimals = pd.Series([Decimal("3"), Decimal("4.0"), Decimal("3.00"), None], dtype=object)  # NUMERIC
    objects = pd.Series([3, 4, 3, None], dtype=object)
    expected = ["3", "4", "3", MISSING_CATEGORY]
    assert category_series(ints).tolist() == expected[:3]
    for column in (floats, nullable, decimals, objects):
        assert category_series(column).tolist() == expected


def test_category_frame_keeps_index_and_columns_and_counts_include_missing() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan], "b": ["x", None]}, index=[7, 9])
    out = category_frame(frame)
    assert list(out.columns) == ["a", "b"] and list(out.index) == [7, 9]
    assert out.to_dict("list") == {"a": ["1", MISSING_CATEGORY], "b": ["x", MISSING_CATEGORY]}
    assert category_counts(pd.Series([3.0, np.nan, 3.0])) == {"3": 2, MISSING_CATEGORY: 1}
    assert category_counts(pd.Series(["a"])) == {"a": 1, MISSING_CATEGORY: 0}

"""Canonical category values: the one rule that turns a categorical feature's values into strings.

Training (pandas via psycopg2), scoring (Arrow via ADBC), drift and validation all see a categorical value
through a driver, and the driver decides its type: an integer column comes out as int64, or as float64 when
the chunk holds a NULL, or as Decimal from a NUMERIC column. The category is the *value*, not the type:

* missing (None, NaN, NA, NaT) -> `MISSING_CATEGORY`;
* strings -> unchanged;
* bools -> 'True' / 'False';
* integers, and integer-valued floats and decimals -> their digits: 3, 3.0, Decimal('3.00') -> '3';
* other finite numbers -> the shortest plain decimal: 3.5, Decimal('3.50') -> '3.5', 1e-07 -> '0.0000001';
* +-infinity -> 'inf' / '-inf';
* anything else (dates, uuids, ...) -> `str(value)`.

`category_frame` is the categorical step of every pipeline built since this rule exists. Registered
pipelines pickle it by reference: never rename or change it (a different rule needs a new function, as
this one was added next to `ml_batch.features.as_category_strings`).
"""

from __future__ import annotations

import decimal
import math
from typing import Any

import numpy as np
import pandas as pd

MISSING_CATEGORY = "__missing__"
"""The category of a missing value."""


def category_text(value: Any) -> str:
    """The canonical category of one value (see the module docstring)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return MISSING_CATEGORY
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating | decimal.Decimal):
        return _number_text(value)
    return str(value)


def _number_text(value: float | np.floating | decimal.Decimal) -> str:
    """A float's or decimal's category: missing for NaN, 'inf'/'-inf', its digits, or its plain decimal."""
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return MISSING_CATEGORY
        if value.is_infinite():
            return "inf" if value > 0 else "-inf"
        return str(int(value)) if value == value.to_integral_value() else _plain(value)
    number = float(value)
    if math.isnan(number):
        return MISSING_CATEGORY
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    # repr is the shortest text that reads back as the same float: 0.1 stays '0.1'
    return str(int(number)) if number.is_integer() else _plain(decimal.Decimal(repr(number)))


def category_series(column: pd.Series) -> pd.Series:
    """A column's values as canonical categories (object dtype), index and name kept.

    One hash pass over the rows (`pd.factorize`) and `category_text` once per distinct value.
    """
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    # missing values get code -1, which picks the last label
    labels = np.array([*(category_text(value) for value in uniques), MISSING_CATEGORY], dtype=object)
    return pd.Series(labels[codes], index=column.index, name=column.name, dtype=object)


def category_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of `frame` as canonical categories: the categorical step of a feature pipeline.

    Module-level (not a lambda) so that pickled pipelines find it again at load time.
    """
    return pd.DataFrame({name: category_series(frame[name]) for name in frame.columns}, index=frame.index)


def category_counts(column: pd.Series) -> dict[str, int]:
    """Rows per canonical category of a column; `MISSING_CATEGORY` is always present (0 when none)."""
    counts = {str(label): int(count) for label, count in category_series(column).value_counts(sort=False).items()}
    counts.setdefault(MISSING_CATEGORY, 0)
    return counts


def _plain(value: decimal.Decimal) -> str:
    """A finite, non-integral decimal without exponent or trailing zeros: Decimal('1E-7') -> '0.0000001'."""
    return format(value.normalize(), "f")

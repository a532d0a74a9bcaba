"""A quarantined row as JSON (the quarantine table's `row_data`), keeping every value it had.

JSON has no NaN or infinity, and PostgreSQL's jsonb refuses them, so the float values that are no numbers
are kept as strings, spelled as Python prints them: "NaN", "inf", "-inf". NULL stays null. A float column
in pandas holds NaN for both a NULL and a NaN; the caller says which columns of a row held a real NaN (the
validation reasons know: `ml_batch.validation.nan_columns`).

Only quarantined rows go through here (few, by `validation.max_quarantine_share`), so plain per-value
Python is fine; it keeps floats exact (pandas' `to_json` rounds them to 10 digits).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd

NAN = "NaN"


def json_value(value: Any) -> Any:
    """One value as JSON can hold it: None, bool, int, float, str (see the module docstring)."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None  # a NULL as pandas holds it; a real NaN is set by the caller, who knows
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, decimal.Decimal):
        if value.is_nan():
            return NAN
        if value.is_infinite():
            return "inf" if value > 0 else "-inf"
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def row_records(rows: pd.DataFrame, nan_columns: Sequence[Collection[str]]) -> list[dict[str, Any]]:
    """Each row of `rows` as a JSON-safe dict; `nan_columns[i]` names the columns of row i that held NaN.

    Raises:
        ValueError: `nan_columns` does not have one entry per row.
    """
    if len(nan_columns) != len(rows):
        raise ValueError(f"nan_columns has {len(nan_columns)} entries for {len(rows)} rows: expected one per row")
    records = []
    for row, nans in zip(rows.itertuples(index=False, name=None), nan_columns, strict=True):
        record = {str(name): json_value(value) for name, value in zip(rows.columns, row, strict=True)}
        record.update((column, NAN) for column in nans if column in record)
        records.append(record)
    return records

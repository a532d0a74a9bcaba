"""Quarantined rows as JSON: NaN and infinities kept as strings, NULL as null, floats exact."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ml_batch.jsonvalues import json_scalar
from ml_batch.run.quarantine import row_records


def test_values_become_json_safe_and_keep_what_they_were() -> None:
    at = pd.Timestamp("2026-05-21 05:15", tz="UTC")
    values = (None, pd.NA, np.int64(4), np.float64(0.1234567890123), float("inf"), -np.inf, Decimal("2.50"),
              Decimal("NaN"), True, at, dt.date(2026, 5, 21))
    assert [json_scalar(v, non_finite="text") for v in values] == [
        None, None, 4, 0.1234567890123, "inf", "-inf", 2.5, "NaN", True, "2026-05-21T05:15:00+00:00", "2026-05-21"]


def test_a_nan_named_by_the_caller_is_kept_and_a_null_stays_null() -> None:
    rows = pd.DataFrame({"id": [1, 2], "x": [np.nan, np.nan], "y": [np.inf, 1.5]})
    assert row_records(rows, [{"x"}, set()]) == [
        {"id": 1, "x": "NaN", "y": "inf"},
        {"id": 2, "x": None, "y": 1.5},
    ]
    with pytest.raises(ValueError, match="nan_columns has 1 entries for 2 rows"):
        row_records(rows, [set()])

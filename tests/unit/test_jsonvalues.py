"""The one JSON-safe-values rule (`ml_batch.jsonvalues`): plain JSON out of numpy, pandas, decimals and dates."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import numpy as np
import pandas as pd

from ml_batch.jsonvalues import json_safe


def test_nested_values_become_strict_json() -> None:
    value = {1: (np.bool_(True), np.int64(3), np.float32(0.5)), "d": {"x": float("nan"), "y": -np.inf},
             "when": dt.date(2026, 5, 21), "dec": [Decimal("2.50"), Decimal("4"), Decimal("NaN")], "na": pd.NA}
    safe = json_safe(value)
    assert safe == {"1": [True, 3, 0.5], "d": {"x": None, "y": None}, "when": "2026-05-21",
                    "dec": [2.5, 4, None], "na": None}
    assert type(safe["1"][0]) is bool and type(safe["1"][1]) is int and type(safe["1"][2]) is float
    json.dumps(safe, allow_nan=False)  # strict JSON: what jsonb and a webhook receiver accept


def test_a_quarantined_rows_values_keep_what_they_were_as_text() -> None:
    assert json_safe([float("nan"), float("inf"), -np.inf, Decimal("NaN"), b"\x01\xff"], non_finite="text") == [
        "NaN", "inf", "-inf", "NaN", "01ff"]

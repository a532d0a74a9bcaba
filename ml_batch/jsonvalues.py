"""Values as JSON can hold them: the one rule for everything ml-batch writes to a JSON column or sends.

JSON has no NaN or infinity (PostgreSQL's jsonb refuses them, and a bare `NaN` breaks a webhook receiver's
parser), no numpy scalars, no dates and no tuples. `json_safe` turns any nested value into plain JSON:

* mappings -> dicts with text keys, tuples/lists/sets -> lists;
* numpy scalars -> their Python value (`np.bool_` -> bool, `np.int64` -> int, `np.float32` -> float);
* floats and decimals that are no finite number -> null (`non_finite="null"`, for numbers such as metrics
  and statistics, where "undefined" is what null means), or -> the text "NaN", "inf", "-inf"
  (`non_finite="text"`, for a quarantined row's values, which must be kept as they were);
* integral decimals -> int, other decimals -> float;
* dates, times and datetimes -> ISO text; bytes -> hex; None, bool, int, str -> themselves;
* anything else -> `str(value)`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Mapping
from typing import Any, Literal

NonFinite = Literal["null", "text"]
NAN_TEXT = "NaN"


def json_safe(value: Any, *, non_finite: NonFinite = "null") -> Any:
    """`value` (nested) as plain JSON, by the rules of the module docstring."""
    if type(value) is float:  # the common case first: a profile holds tens of thousands of them
        return value if math.isfinite(value) else _number(value, non_finite)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, non_finite=non_finite) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item, non_finite=non_finite) for item in value]
    return json_scalar(value, non_finite=non_finite)


def json_scalar(value: Any, *, non_finite: NonFinite = "null") -> Any:
    """One (non-container) value as JSON can hold it."""
    value = python_value(value)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | decimal.Decimal):
        return _number(value, non_finite)
    if isinstance(value, dt.date | dt.time):  # datetime is a date
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def python_value(value: Any) -> Any:
    """numpy scalars and pandas' missing values as plain Python (without importing either); anything else as
    it is."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy":
        return item()
    if type(value).__name__ in ("NAType", "NaTType") and type(value).__module__.startswith("pandas"):
        return None
    return value


def _number(value: float | decimal.Decimal, non_finite: NonFinite) -> float | int | str | None:
    if isinstance(value, decimal.Decimal):
        if value.is_finite():
            return int(value) if value == value.to_integral_value() else float(value)
        special = NAN_TEXT if value.is_nan() else ("inf" if value > 0 else "-inf")
    else:
        if math.isfinite(value):
            return value
        special = NAN_TEXT if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return special if non_finite == "text" else None

"""Why a row or a batch failed, as text: `RowReason`, and how values and expectations read in a reason.

A row reason reads "<column>: <expectation> (<detail>), got <the row's value>". NaN and +-Infinity are
values to name, never to hide: reasons read `got NaN`, `got inf`, `got -inf`, and each reason is a
`RowReason` that keeps the column and the value GX read, so a quarantined row's NaN is stored as "NaN",
never as null (pandas cannot tell the two apart). A categorical feature's value is shown as its canonical
category (`ml_batch.categories`): '7', not 7.0 from a float column.

Nothing here imports Great Expectations: these are plain functions of the values GX returned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd

from ml_batch.categories import MISSING_CATEGORY, category_text
from ml_batch.jsonvalues import python_value
from ml_batch.validation.suite import NUMERIC_TYPES

# How many values a reason or a batch-failure line lists before it says how many there are in all.
MAX_LISTED = 10

# A row reason reads "<column>: <expectation> (<detail>), got <the row's value>": the part before GOT is the
# same for every row that failed the same way (what the UI's quarantine page counts rows by).
GOT = ", got "

# A batch-failure line ends with EXAMPLES and a few failing values: the part before it says what failed and
# how often, for readers who may not see the source's values (the analyst role, the UI's viewers, runs.error).
EXAMPLES = "; e.g. "

# kwargs that say where or how an expectation runs, not what it expects: never shown in a reason.
_NOT_PARAMETERS = frozenset(
    {"column", "column_A", "column_B", "column_list", "batch_id", "result_format", "catch_exceptions"}
)


def failure_of(reason: str) -> str:
    """A row reason without the row's value: what failed, the same for every row failing the same way (what
    rows are counted by; the UI's quarantine page cuts at `GOT` in SQL the same way)."""
    return reason.partition(GOT)[0]


class RowReason(str):
    """One reason a row failed, as text, with the column and the value GX read for it (None when several).

    A `str` so that reasons compare, sort and serialise as the text they are; the value lets the caller
    keep what pandas cannot tell apart (a float NaN from a NULL) when it stores the quarantined row.
    """

    column: str | None
    value: Any

    def __new__(cls, text: str, column: str | None = None, value: Any = None) -> RowReason:
        reason = super().__new__(cls, text)
        reason.column = column
        reason.value = value
        return reason

    @property
    def is_nan(self) -> bool:
        """Whether the failing value is NaN (a float or decimal NaN, not a NULL)."""
        return is_nan(self.value)


def nan_columns(reasons: Iterable[str]) -> set[str]:
    """The columns whose failing value, among a row's reasons, was NaN (not NULL)."""
    return {r.column for r in reasons if isinstance(r, RowReason) and r.column is not None and r.is_nan}


def row_reason(text: str, entry: dict[str, Any], columns: Sequence[str], categorical: set[str]) -> RowReason:
    """The reason of one failing row: `text` (what failed), then the row's values of the failing columns.

    Args:
        text: "<columns>: <expectation><detail>", the same for every row failing this expectation.
        entry: the row's entry in GX's `unexpected_index_list` (its key and the expectation's columns).
        columns: the expectation's columns.
        categorical: the spec's categorical features (shown as their canonical category).

    Returns:
        The reason, keeping the failing column and value when the expectation has one column.
    """
    shown = got(entry, columns, categorical)
    return RowReason(f"{text}{GOT}{shown}" if shown else text, *failing_value(entry, columns))


def got(entry: dict[str, Any], columns: Sequence[str], categorical: set[str]) -> str:
    """A failing row's values of the expectation's columns, from GX's unexpected_index_list entry.

    A categorical feature's value is shown as its canonical category ('7', not 7.0 from a float column).
    """

    def shown(column: str) -> str:
        value = entry.get(column)
        if column in categorical and category_text(value) != MISSING_CATEGORY:
            return repr(category_text(value))
        return value_text(value)

    if len(columns) == 1:
        return shown(columns[0])
    return ", ".join(f"{column}={shown(column)}" for column in columns)


def failing_value(entry: dict[str, Any], columns: Sequence[str]) -> tuple[str | None, Any]:
    """The column and value a RowReason keeps: the expectation's one column, or none when it has several."""
    return (columns[0], native(entry.get(columns[0]))) if len(columns) == 1 else (None, None)


def label(columns: Sequence[str]) -> str:
    """The columns a line is about, as its prefix: 'income: ', 'a, b: ', or '' for a table-level one."""
    return f"{', '.join(columns)}: " if columns else ""


def detail(kind: str, kwargs: dict[str, Any], key: str) -> str:
    """The expectation's parameters, for a reason line: ' (min 0, max 100)'."""
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        low_text = "> -inf" if low == -math.inf and kwargs.get("strict_min") else bound_text(low)
        high_text = "< inf" if high == math.inf and kwargs.get("strict_max") else bound_text(high)
        return f" (min {low_text}, max {high_text})"
    if kind == "expect_column_values_to_be_in_set":
        return f" (allowed: {listing(kwargs.get('value_set') or [])})"
    if kind == "expect_column_values_to_not_be_in_set":
        return f" (not allowed: {listing(kwargs.get('value_set') or [])})"
    if kind == "expect_column_values_to_be_in_type_list":
        types = kwargs.get("type_list") or []
        return " (numeric types)" if list(types) == list(NUMERIC_TYPES) else f" (types: {listing(types)})"
    if kind == "expect_column_values_to_be_unique":
        return " (key not unique)" if kwargs.get("column") == key else ""
    shown = [
        f"{name} {bound_text(value) if isinstance(value, float) else value_text(value)}"
        for name, value in kwargs.items()
        if name not in _NOT_PARAMETERS and value is not None
    ]
    return f" ({', '.join(shown)})" if shown else ""


def without_examples(line: str) -> str:
    """A batch-failure line without its failing values (what follows `EXAMPLES`), for readers who may not see
    the source's values; the counts and the share stay."""
    return line.split(EXAMPLES, 1)[0]


def examples(result: dict[str, Any]) -> str:
    """Distinct failing values among GX's first examples (SUMMARY lists up to 20 failing rows)."""
    counts = result.get("partial_unexpected_counts") or []
    values = [c.get("value") for c in counts] if counts else list(result.get("partial_unexpected_list") or [])
    return listing(values)


def between_text(low: Any, high: Any) -> str:
    """A range for a message: 'between 1 and 5', 'at least 1', 'at most 5' or 'any number'."""
    if low is not None and high is not None:
        return f"between {bound_text(low)} and {bound_text(high)}"
    if low is not None:
        return f"at least {bound_text(low)}"
    return f"at most {bound_text(high)}" if high is not None else "any number"


def bound_text(value: Any) -> str:
    """A bound for a message: an integral float without its '.0', None as 'none'."""
    value = native(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "none" if value is None else str(value)


def value_text(value: Any) -> str:
    """A value for a message: 'null', 'NaN', 'inf', '-inf', a quoted string or the value's text."""
    value = native(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return "null"
    return special_text(value) or (repr(value) if isinstance(value, str) else str(value))


def special_text(value: Any) -> str | None:
    """'NaN', 'inf' or '-inf' for a float or decimal that is no finite number; None for anything else."""
    value = native(value)
    if is_nan(value):
        return "NaN"
    if (isinstance(value, float) and math.isinf(value)) or (isinstance(value, Decimal) and value.is_infinite()):
        return "inf" if value > 0 else "-inf"
    return None


def is_nan(value: Any) -> bool:
    """A float or decimal NaN (what PostgreSQL's 'NaN' reads as through psycopg2), not a NULL."""
    value = native(value)
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, Decimal) and value.is_nan())


def listing(values: Sequence[Any]) -> str:
    """Up to `MAX_LISTED` values as text, then how many there are in all."""
    shown = ", ".join(value_text(v) for v in list(values)[:MAX_LISTED])
    return shown if len(values) <= MAX_LISTED else f"{shown}, ... ({len(values)} in all)"


def native(value: Any) -> Any:
    """numpy scalars -> Python scalars, so keys and messages read as plain values (`jsonvalues.python_value`)."""
    return python_value(value)

"""What GX's results mean for a batch: the failures that fail it whole, and the failing rows by key.

Failures come in two kinds:

* **batch failures** (too few rows, a missing column, a column of the wrong type, a null key, an
  expectation GX could not evaluate, more failing rows than `validation.max_quarantine_share`) fail the
  whole batch; the caller decides to raise. An expectation GX could not evaluate because of a database
  fault never gets here: `ml_batch.validation.session.run_expectations` raises it as transient;
* **row failures** (a value out of range, null or unknown, a repeated key, NaN or +-Infinity) quarantine the
  rows, each mapped back to its entity key with every reason it failed; the rest of the batch is scored.
  A caller whose rows repeat a key (training's window of many days) names a row identity column instead
  (`row_key`), and the failing rows are keyed by it.

Each failed expectation is read on its own into a `Contribution` (the batch-failure lines and the row reasons
it adds), and the contributions are then folded into the `Findings`. The only thing one expectation's
reading needs from the others is which missing columns were already named, so a missing column is
reported once: table-level results are read first, so the columns check names it.

The quarantine share is `ValidationSpec.quarantine_exceeded`, the one rule publish applies to the day too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ml_batch.spec import Spec
from ml_batch.validation.reasons import (
    EXAMPLES,
    RowReason,
    between_text,
    detail,
    examples,
    label,
    native,
    row_reason,
    value_text,
)
from ml_batch.validation.session import exception_messages

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.expectations.expectation import Expectation

# GX's base classes of the expectations that judge each row (and so can be mapped back to keys).
_ROW_LEVEL = ("ColumnMapExpectation", "ColumnPairMapExpectation", "MulticolumnMapExpectation")


@dataclass(frozen=True)
class Findings:
    """What the failed expectations of one batch add up to.

    Attributes:
        rows: rows in the batch, when GX counted them (it does when something failed).
        batch_failures: one human-readable line per failure that fails the whole batch.
        row_reasons: entity key -> every reason that key's row(s) failed, sorted; only failing rows.
    """

    rows: int | None
    batch_failures: list[str]
    row_reasons: dict[Any, list[str]]


@dataclass(frozen=True)
class Failed:
    """One failed expectation as interpretation reads it: what it is, and what GX returned for it."""

    kind: str
    kwargs: dict[str, Any]
    columns: list[str]
    result: dict[str, Any]
    errors: list[str]
    row_level: bool

    @property
    def count(self) -> Any:
        """GX's count of failing values (an int for a column's expectations)."""
        return self.result.get("unexpected_count")

    @property
    def total(self) -> Any:
        """GX's count of the batch's rows (an int for a column's expectations)."""
        return self.result.get("element_count")


@dataclass(frozen=True)
class Contribution:
    """What one failed expectation adds to the findings.

    Attributes:
        failures: its batch-failure lines.
        reasons: (entity key, reason) of each failing row it listed.
        named_missing: the missing columns its lines name (none is named twice).
        keyless_rows: failing rows it listed without a key (they cannot be quarantined).
        key_nulls: True when it is the key's own null check (which names those rows already).
    """

    failures: tuple[str, ...] = ()
    reasons: tuple[tuple[Any, RowReason], ...] = ()
    named_missing: tuple[str, ...] = ()
    keyless_rows: int = 0
    key_nulls: bool = False


@dataclass(frozen=True)
class Reading:
    """What reading a result needs to know of the batch and the spec."""

    spec: Spec
    present: frozenset[str]
    share_of: int | None
    row_key: str | None = None

    @property
    def key(self) -> str:
        """The entity key column."""
        return self.spec.source.key

    @property
    def index(self) -> str:
        """The column failing rows are keyed by: `row_key`, else the entity key."""
        return self.row_key or self.key

    @property
    def categorical(self) -> set[str]:
        """The categorical features (their failing values read as categories)."""
        return {f.name for f in self.spec.features if f.type == "categorical"}


def interpret(
    spec: Spec, present: Iterable[str], expectations: Sequence[Expectation],
    details: dict[int, ExpectationValidationResult], share_of: int | None, *, row_key: str | None = None,
) -> Findings:
    """The findings of the detailed (pass 2/3) results of a batch's failed screens.

    Args:
        spec: the model spec (key, quarantine share, categorical features).
        present: the batch's columns.
        expectations: the suite's expectations, indexed as `details`.
        details: index of a failed screen -> GX's detailed result for it.
        share_of: the rows the quarantine share applies to; None: the batch's own rows.
        row_key: the column GX listed failing rows by (`unexpected_index_column_names`); None: the key.

    Returns:
        The batch failures and the failing rows' reasons by key (by `row_key` when given).
    """
    reading = Reading(spec, frozenset(present), share_of, row_key)
    order = table_level_first(expectations, details)
    failed = [failed_view(details[i], expectations[i]) for i in order if not details[i].success]
    contributions = _read_all(failed, reading)
    return Findings(rows=rows_counted(details[i] for i in order),
                    batch_failures=_batch_failures(contributions, reading.key),
                    row_reasons=_row_reasons(contributions))


def table_level_first(expectations: Sequence[Expectation], details: dict[int, Any]) -> list[int]:
    """The indices of `details`, table-level expectations first (so a missing column is named by them)."""
    return sorted(details, key=lambda i: not expectations[i].expectation_type.startswith("expect_table_"))


def rows_counted(results: Iterable[ExpectationValidationResult]) -> int | None:
    """The batch's row count as the last of `results` that counted it reports; None when none did."""
    counts = [total for res in results if isinstance(total := (res.result or {}).get("element_count"), int)]
    return counts[-1] if counts else None


def failed_view(res: ExpectationValidationResult, expectation: Expectation) -> Failed:
    """A failed result, with the configuration GX ran (or the suite's when GX returned none)."""
    config = res.expectation_config or expectation.configuration
    kwargs = dict(config.kwargs)
    return Failed(kind=config.type, kwargs=kwargs, columns=columns_of(kwargs), result=res.result or {},
                  errors=exception_messages(res), row_level=is_row_level(expectation))


def _read_all(failed: Sequence[Failed], reading: Reading) -> list[Contribution]:
    """Each failed expectation's contribution, in order; the missing columns already named are carried on."""
    named: frozenset[str] = frozenset()
    contributions = []
    for item in failed:
        contribution = contribution_of(item, reading, named)
        named |= set(contribution.named_missing)
        contributions.append(contribution)
    return contributions


def contribution_of(item: Failed, reading: Reading, named: frozenset[str]) -> Contribution:
    """What one failed expectation adds; `named` are the missing columns earlier lines named."""
    if any(c not in reading.present for c in item.columns):
        return _missing_columns(item, reading.present, named)
    if item.errors:
        return Contribution(failures=(f"{label(item.columns)}{item.kind} could not be evaluated: "
                                      f"{'; '.join(item.errors)}",))
    if item.columns == [reading.key] and item.kind == "expect_column_values_to_not_be_null":
        return Contribution(failures=(f"{reading.key}: {item.count} rows have a null key ({item.kind}); "
                                      "they cannot be quarantined by key",), key_nulls=True)
    if "unexpected_index_list" in item.result:
        return _listed_rows(item, reading)
    if _over_share(item, reading):
        return _share_exceeded(item, reading)
    return _table_level(item, reading.key, named)


def _missing_columns(item: Failed, present: frozenset[str], named: frozenset[str]) -> Contribution:
    missing = tuple(c for c in item.columns if c not in present and c not in named)
    return Contribution(failures=tuple(f"{column}: column is missing (needed by {item.kind})" for column in missing),
                        named_missing=missing)


def _listed_rows(item: Failed, reading: Reading) -> Contribution:
    """The reasons of the failing rows GX listed (pass 3), and how many of them had no key."""
    text = f"{label(item.columns)}{item.kind}{detail(item.kind, item.kwargs, reading.key)}"
    entries = item.result["unexpected_index_list"]
    keyed = [(entry, key) for entry in entries
             if isinstance(entry, dict) and (key := entry.get(reading.index)) is not None]
    categorical = reading.categorical
    reasons = tuple((native(key), row_reason(text, entry, item.columns, categorical)) for entry, key in keyed)
    return Contribution(reasons=reasons, keyless_rows=len(entries) - len(keyed))


def share_basis(share_of: int | None, total: Any) -> Any:
    """The rows the quarantine share applies to: the day's (`share_of`) when given, else the batch's."""
    return share_of if share_of is not None else total


def _over_share(item: Failed, reading: Reading) -> bool:
    count, basis = item.count, share_basis(reading.share_of, item.total)
    return (item.row_level and isinstance(count, int) and isinstance(basis, int) and bool(basis)
            and reading.spec.validation.quarantine_exceeded(count, basis))


def _share_exceeded(item: Failed, reading: Reading) -> Contribution:
    count, basis = item.count, share_basis(reading.share_of, item.total)
    cap = reading.spec.validation.max_quarantine_share
    return Contribution(failures=(
        f"{label(item.columns)}{item.kind}{detail(item.kind, item.kwargs, reading.key)}: {count} of {basis} rows "
        f"failed ({count / basis:.1%}), above validation.max_quarantine_share {cap:.1%}"
        f"{EXAMPLES}{examples(item.result)}",
    ))


def _table_level(item: Failed, key: str, named: frozenset[str]) -> Contribution:
    """The line of a failed table-level (or otherwise unmappable) expectation."""
    if item.kind == "expect_table_columns_to_match_set":
        return _columns_mismatch(item, named)
    if item.kind == "expect_table_row_count_to_be_between":
        bounds = between_text(item.kwargs.get("min_value"), item.kwargs.get("max_value"))
        return Contribution(failures=(f"{item.kind}: {item.result.get('observed_value')} rows, expected {bounds}",))
    if "unexpected_count" in item.result:
        observed = f"{item.result['unexpected_count']} unexpected values"
    else:
        observed = f"observed {value_text(item.result.get('observed_value'))}"
    return Contribution(failures=(f"{label(item.columns)}{item.kind}{detail(item.kind, item.kwargs, key)}: "
                                  f"{observed}",))


def _columns_mismatch(item: Failed, named: frozenset[str]) -> Contribution:
    """The columns check: the missing columns not named yet, and the unexpected ones; nothing when neither."""
    mismatched = (item.result.get("details") or {}).get("mismatched") or {}
    absent = tuple(c for c in mismatched.get("missing", []) if c not in named)
    parts = [f"missing columns {list(absent)}"] if absent else []
    if mismatched.get("unexpected"):
        parts.append(f"unexpected columns {mismatched['unexpected']}")
    return Contribution(failures=(f"{item.kind}: {', '.join(parts)}",) if parts else (), named_missing=absent)


def _batch_failures(contributions: Sequence[Contribution], key: str) -> list[str]:
    """Every contribution's lines, then the failing rows without a key unless the key's null check named them."""
    lines = [line for c in contributions for line in c.failures]
    keyless = sum(c.keyless_rows for c in contributions)
    if keyless and not any(c.key_nulls for c in contributions):  # only when a custom suite does not check the key
        lines.append(f"{key}: {keyless} failing rows have a null key and cannot be quarantined")
    return lines


def _row_reasons(contributions: Sequence[Contribution]) -> dict[Any, list[str]]:
    """Key -> its distinct reasons, sorted (by column, as every reason starts with it); keys in first-seen order."""
    grouped: dict[Any, list[str]] = {}
    for key, reason in (pair for c in contributions for pair in c.reasons):
        reasons = grouped.setdefault(key, [])
        if reason not in reasons:
            reasons.append(reason)
    return {key: sorted(reasons) for key, reasons in grouped.items()}


# --- reading GX's objects ----------------------------------------------------------------------------


def columns_of(kwargs: dict[str, Any]) -> list[str]:
    """The columns an expectation's kwargs name: `column`, `column_A` and `column_B`, or `column_list`."""
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs and "column_B" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def is_row_level(expectation: Expectation) -> bool:
    """Whether the expectation judges each row (so its failing rows can be listed by key)."""
    return any(base.__name__ in _ROW_LEVEL for base in type(expectation).__mro__)

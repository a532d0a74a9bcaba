"""The expectation suite of a model: generated from its spec, extended by an optional GX suite file.

The suite is generated from the model spec (types, nullability, ranges, categories, the entity key, the
row count and the columns) and can be extended with a hand-written GX 1.x suite JSON named by
`validation.suite` (resolved against the spec's folder by `suite_path`).

NaN and +-Infinity are values to validate, never to impute or crash on. In PostgreSQL a float8 (or numeric)
'NaN' is not NULL and sorts above every number, and 'Infinity' passes `>= min`: neither the null check nor
a one-sided range check sees them. So every numeric feature whose column can hold them (REAL, DOUBLE
PRECISION, NUMERIC; not integers or booleans) gets `expect_column_values_to_be_between` with both bounds,
a missing one being an exclusive infinite bound (`x >= min AND x < 'Infinity'`): false for NaN and for
+-Infinity. It is the range check a bounded feature had anyway, so the screening pass stays one aggregate
query with no extra condition for bounded features and no per-row Python. A NaN is thus never a missing
value to impute: in a `nullable: false` column it is missing, in any numeric column it is quarantined. A
categorical feature stored as a float is checked for 'NaN' when it is `nullable: false` (elsewhere a NaN
category is the missing category, as in `ml_batch.categories`).

Great Expectations is imported only when a suite is built (`ml_batch.validation.session.import_gx`).
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_batch.errors import SpecError
from ml_batch.spec import FeatureSpec, Spec
from ml_batch.validation.session import import_gx

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.expectations.expectation import Expectation

logger = logging.getLogger(__name__)

# PostgreSQL column types a numeric feature may have, as GX 1.x names them for PostgreSQL (it compares the
# rendered type, case-insensitively): NUMERIC(p, s) renders with its precision and is added per column by
# `column_types`. bool counts as numeric, as it does for pandas and scikit-learn.
NUMERIC_TYPES: tuple[str, ...] = (
    "SMALLINT", "INTEGER", "BIGINT", "REAL", "DOUBLE PRECISION", "NUMERIC", "DECIMAL", "FLOAT", "BOOLEAN",
)  # fmt: skip
_PRECISE_NUMERIC_RE = re.compile(r"^(NUMERIC|DECIMAL)\(\d+(, ?\d+)?\)$", re.IGNORECASE)
# Types that cannot hold NaN or infinity: their range checks need no infinite bounds.
_WHOLE_TYPES = ("SMALLINT", "INTEGER", "BIGINT", "BOOLEAN")
_FLOAT_TYPES_RE = re.compile(r"^(REAL|DOUBLE PRECISION|FLOAT|NUMERIC|DECIMAL)\b", re.IGNORECASE)


def suite_path(spec: Spec, spec_dir: Path) -> Path | None:
    """The extra suite file named by `validation.suite`, resolved against the spec's folder."""
    if spec.validation.suite is None:
        return None
    path = Path(spec.validation.suite)
    return path if path.is_absolute() else spec_dir / path


def suite_of(spec: Spec, spec_file: Path | None) -> Path | None:
    """The extra suite file of a spec read from `spec_file` (`suite_path` against its folder); None for a spec
    built in code, whose `validation.suite` must then be absolute (`build_suite` names a relative one)."""
    return None if spec_file is None else suite_path(spec, Path(spec_file).parent)


def build_suite(
    spec: Spec,
    extra_suite: Path | None = None,
    *,
    check_row_count: bool = True,
    check_key_unique: bool = True,
    column_types: dict[str, str] | None = None,
) -> gx.ExpectationSuite:
    """Build the expectation suite of a model: generated from its spec, plus an optional suite file.

    Args:
        spec: the model spec.
        extra_suite: a GX 1.x suite JSON (`{"name": ..., "expectations": [{"type": ..., "kwargs": ...}]}`)
            whose expectations are added. When None, an absolute `validation.suite` of the spec is used; a
            relative one must be resolved by the caller with `suite_path`.
        check_row_count: include `expect_table_row_count_to_be_between`; switch it off when validating one
            shard of a day (the day's total is checked once, at publish).
        check_key_unique: include `expect_column_values_to_be_unique` on the key; switch it off when the
            database already guarantees it (`ml_batch.validation.relation.key_is_unique`).
        column_types: the validated relation's column types as GX renders them
            (`ml_batch.validation.relation.relation_column_types`); a numeric feature stored as NUMERIC(p, s)
            is accepted with its precision, and one stored as an integer or boolean needs no check for NaN
            and infinities (a column of unknown type gets it).

    Returns:
        The suite (not registered in any context).

    Raises:
        SpecError: the suite file is missing or malformed, or a relative `validation.suite` was not resolved.
    """
    gx = import_gx()
    expectations = _spec_expectations(spec, check_row_count=check_row_count, check_key_unique=check_key_unique,
                                      column_types=column_types or {})
    extra = extra_suite if extra_suite is not None else _absolute_suite(spec)
    if extra is not None:
        expectations.extend(_load_suite_file(extra))
    return gx.ExpectationSuite(name=f"ml_batch.{spec.name}", expectations=expectations)


def _absolute_suite(spec: Spec) -> Path | None:
    """The spec's own `validation.suite` when it is absolute; None when it names none; a relative one raises."""
    if spec.validation.suite is None:
        return None
    if not Path(spec.validation.suite).is_absolute():
        raise SpecError(
            f"model {spec.name!r}: validation.suite {spec.validation.suite!r} is relative to the spec's "
            "folder; resolve it with ml_batch.validation.suite.suite_path(spec, spec_dir) and pass extra_suite"
        )
    return Path(spec.validation.suite)


# --- generated from the spec -----------------------------------------------------------------------


def _spec_expectations(
    spec: Spec, *, check_row_count: bool, check_key_unique: bool, column_types: dict[str, str]
) -> list[Expectation]:
    """The table's expectations, then each feature's, in the spec's order."""
    meta = {"source": f"spec {spec.name}"}
    expectations = _table_expectations(spec, meta, check_row_count=check_row_count,
                                       check_key_unique=check_key_unique)
    for feature in spec.features:
        expectations.extend(_feature_expectations(feature, column_types.get(feature.name, ""), meta))
    return expectations


def _table_expectations(
    spec: Spec, meta: dict[str, str], *, check_row_count: bool, check_key_unique: bool
) -> list[Expectation]:
    """The columns are there, the key is never null (and unique), the row count is within bounds."""
    import great_expectations.expectations as gxe

    key = spec.source.key
    columns = [key, spec.source.date_column, *spec.feature_names]
    expectations: list[Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=False, meta=meta),
        gxe.ExpectColumnValuesToNotBeNull(column=key, meta=meta),
    ]
    if check_key_unique:
        expectations.append(gxe.ExpectColumnValuesToBeUnique(column=key, meta=meta))
    if check_row_count:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=spec.validation.min_rows, max_value=spec.validation.max_rows, meta=meta
            )
        )
    return expectations


def _feature_expectations(feature: FeatureSpec, stored: str, meta: dict[str, str]) -> list[Expectation]:
    """One feature's expectations; `stored` is its column's type as GX renders it ('' when unknown)."""
    import great_expectations.expectations as gxe

    expectations: list[Expectation] = []
    if feature.type == "numeric":
        types = list(NUMERIC_TYPES)
        if _PRECISE_NUMERIC_RE.match(stored):
            types.append(stored)
        expectations.append(gxe.ExpectColumnValuesToBeInTypeList(column=feature.name, type_list=types, meta=meta))
        between = _range_kwargs(feature.min, feature.max, finite=stored.upper() not in _WHOLE_TYPES)
        if between:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=feature.name, **between, meta=meta))
    elif feature.categories is not None:
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(column=feature.name, value_set=list(feature.categories), meta=meta)
        )
    if not feature.nullable:
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=feature.name, meta=meta))
        if feature.type == "categorical" and _FLOAT_TYPES_RE.match(stored):  # a NaN category is missing too
            expectations.append(gxe.ExpectColumnValuesToNotBeInSet(column=feature.name, value_set=["NaN"],
                                                                   meta=meta))
    return expectations


def _range_kwargs(low: float | None, high: float | None, *, finite: bool) -> dict[str, Any]:
    """The kwargs of a numeric feature's `expect_column_values_to_be_between`; empty when it needs none.

    With `finite` (the column may hold NaN or infinities) a missing bound is an infinite, exclusive one:
    `x >= min AND x < 'Infinity'` is false for +Infinity and for NaN (PostgreSQL sorts NaN above every
    number), `x > '-Infinity'` for -Infinity. So one range check rejects every value that is no finite
    number, at the cost of the comparisons a bounded feature made anyway (a separate NOT IN of the three
    specials doubled the screening pass's time on 20 bounded features).
    """
    if not finite:
        return {"min_value": low, "max_value": high} if low is not None or high is not None else {}
    kwargs: dict[str, Any] = {"min_value": low, "max_value": high}  # a bounded feature's check, unchanged
    if low is None:
        kwargs.update(min_value=-math.inf, strict_min=True)
    if high is None:
        kwargs.update(max_value=math.inf, strict_max=True)
    return kwargs


# --- a suite file ------------------------------------------------------------------------------------


def _load_suite_file(path: Path) -> list[Expectation]:
    """The expectations of a GX 1.x suite JSON; any problem is a SpecError naming the file and the entry."""
    entries = _suite_entries(path)
    meta_source = {"source": f"suite {path.name}"}
    expectations = [_suite_expectation(f"{path}: expectations[{number}]", entry, meta_source)
                    for number, entry in enumerate(entries)]
    logger.info("loaded %d expectations from %s", len(expectations), path)
    return expectations


def _suite_entries(path: Path) -> list[Any]:
    """The `expectations` list of a suite file, read and checked for its shape."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such expectation suite file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read the expectation suite file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a JSON object with 'name' and 'expectations', got {type(raw).__name__}")
    entries = raw.get("expectations")
    if not isinstance(entries, list):
        raise SpecError(f"{path}: 'expectations' must be a list of {{'type': ..., 'kwargs': {{...}}}} objects")
    return entries


def _suite_expectation(where: str, entry: Any, meta_source: dict[str, str]) -> Expectation:
    """One entry of a suite file as an expectation; `where` names the file and the entry in errors."""
    if not isinstance(entry, dict):
        raise SpecError(f"{where}: expected an object with 'type' and 'kwargs', got {type(entry).__name__}")
    if "expectation_type" in entry and "type" not in entry:
        raise SpecError(f"{where}: 'expectation_type' is the GX 0.x format; GX 1.x calls it 'type'")
    kind, kwargs, meta = entry.get("type"), entry.get("kwargs", {}), entry.get("meta") or {}
    if not isinstance(kind, str) or not kind.startswith("expect_"):
        raise SpecError(f"{where}: 'type' must name an expectation like 'expect_column_values_to_match_regex', "
                        f"got {kind!r}")  # fmt: skip
    if not isinstance(kwargs, dict) or not isinstance(meta, dict):
        raise SpecError(f"{where} ({kind}): 'kwargs' and 'meta' must be objects")
    return _configured(where, kind, kwargs, {**meta_source, **meta}, entry.get("notes"))


def _configured(where: str, kind: str, kwargs: dict[str, Any], meta: dict[str, Any], notes: Any) -> Expectation:
    """GX's expectation of `kind` with `kwargs`; GX's own objection is a SpecError naming `where`."""
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    try:
        configuration = ExpectationConfiguration(type=kind, kwargs=kwargs, meta=meta, notes=notes)
        return configuration.to_domain_obj()
    except ExpectationNotFoundError as exc:
        raise SpecError(f"{where}: unknown expectation type {kind!r} ({exc.message})") from exc
    except GreatExpectationsError as exc:
        raise SpecError(f"{where} ({kind}): invalid expectation: {exc.message}") from exc
    except (ValueError, TypeError) as exc:  # pydantic (v1) ValidationError is a ValueError
        problem = " ".join(str(exc).split())
        raise SpecError(f"{where} ({kind}): invalid kwargs {kwargs}: {problem}") from exc

"""Validate a shard of feature rows with Great Expectations (GX Core 1.x) inside PostgreSQL, before scoring.

The suite is generated from the model spec (types, nullability, ranges, categories, the entity key, the
row count and the columns) and can be extended with a hand-written GX suite JSON named by
`validation.suite`. GX is the validator of record: its result is saved as a JSON file per shard.

Failures come in two kinds:

* **batch failures** (too few rows, a missing column, a column of the wrong type, a null key, an
  expectation GX could not evaluate, more failing rows than `validation.max_quarantine_share`) fail the
  whole batch; the caller decides to raise;
* **row failures** (a value out of range, null or unknown, a repeated key, NaN or +-Infinity) quarantine the
  rows, each mapped back to its entity key with every reason it failed; the rest of the batch is scored.

NaN and +-Infinity are values to validate, never to impute or crash on. In PostgreSQL a float8 (or numeric)
'NaN' is not NULL and sorts above every number, and 'Infinity' passes `>= min`: neither the null check nor
a one-sided range check sees them. So every numeric feature whose column can hold them (REAL, DOUBLE
PRECISION, NUMERIC; not integers or booleans) gets `expect_column_values_to_be_between` with both bounds,
a missing one being an exclusive infinite bound (`x >= min AND x < 'Infinity'`): false for NaN and for
+-Infinity. It is the range check a bounded feature had anyway, so the screening pass stays one aggregate
query with no extra condition for bounded features and no per-row Python. A NaN is thus never a missing
value to impute: in a `nullable: false` column it is missing, in any numeric column it is quarantined. A
categorical feature stored as a float is checked for 'NaN' when it is `nullable: false` (elsewhere a NaN
category is the missing category, as in `ml_batch.categories`). Reasons name the value as `got NaN`,
`got inf`, `got -inf`, and each reason is a `RowReason` that keeps the column and the value GX read, so a
quarantined row's NaN is stored as "NaN", never as null (pandas cannot tell the two apart). The saved GX
result spells them "NaN", "inf", "-inf" too (GX's own JSON has null for NaN and a bare, invalid Infinity).

How GX is run, and why: GX validates the shard *where the rows are*, with its PostgreSQL (SQL) datasource
on a view of exactly the rows the shard scores (`relation`). GX folds the row-level checks of all columns
into one aggregate query, so a shard costs one pass over its rows in PostgreSQL plus GX's fixed overhead,
whatever the row count; the rows themselves never travel to Python for validation. In pandas, GX's cost
was almost all fixed overhead per call (~0.3-0.5 s to build its metric graph), paid once per streamed
chunk: 7.0 s for 1,000,000 rows x 20 features in 16 MB chunks, against 1.25 s here (`make bench`).

Validation runs in up to three passes, each only as wide as it must be:

1. the whole suite with result format BOOLEAN_ONLY: counts only, no failing rows fetched; the key's
   uniqueness is *screened* by the cheaper aggregate "proportion of unique values = 1" (one
   COUNT(DISTINCT) instead of a GROUP BY), so a clean shard costs three aggregate queries;
2. only if something failed: the failing expectations again, with SUMMARY (counts, observed values,
   examples); a column failing on more rows than the quarantine share allows fails the batch here,
   before millions of failing keys are listed;
3. the failing row-level expectations with COMPLETE and `unexpected_index_column_names=[key]`: the
   failing rows' keys and values.

The saved result is the pass-1 result with the failing expectations' entries replaced by their pass-2/3
entries; `meta.ml_batch` says so.

GX is imported lazily (it takes seconds to import), so importing this module at DAG-parse time is cheap.
GX 1.24 contains no usage-analytics client any more (no `great_expectations.analytics`, no posthog), and an
ephemeral context with in-memory stores sends nothing anywhere; as belt and braces for older 1.x releases
`GX_ANALYTICS_ENABLED` is set to false before GX is first imported and the context is created with
`analytics_enabled=False`. GX's "Calculating Metrics" tqdm progress bars are switched off in the
context config, and its logger is set to WARNING (it logs hundreds of INFO lines on import).
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.categories import MISSING_CATEGORY, category_text
from ml_batch.errors import SpecError
from ml_batch.ops import reports
from ml_batch.spec import Spec

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.datasource.fluent.interfaces import Batch
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

_SCREEN_FORMAT: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}
_SUMMARY_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "return_unexpected_index_query": False}
_SAFE_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_LISTED = 10
_ROW_LEVEL = ("ColumnMapExpectation", "ColumnPairMapExpectation", "MulticolumnMapExpectation")


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
        return _is_nan(self.value)


# A row reason reads "<column>: <expectation> (<detail>), got <the row's value>": the part before GOT is the
# same for every row that failed the same way (what the UI's quarantine page counts rows by).
GOT = ", got "


def nan_columns(reasons: Iterable[str]) -> set[str]:
    """The columns whose failing value, among a row's reasons, was NaN (not NULL)."""
    return {r.column for r in reasons if isinstance(r, RowReason) and r.column is not None and r.is_nan}


@dataclass(frozen=True)
class ValidationOutcome:
    """What validating one batch found.

    Attributes:
        rows: rows in the validated batch, when GX counted them (it does when something failed).
        batch_failures: one human-readable line per failure that fails the whole batch.
        row_reasons: entity key -> every reason that key's row(s) failed; only failing rows. Every row with
            such a key is quarantined (two rows sharing a duplicated key are both quarantined).
        result_json: the GX validation result (`to_json_dict()`), to be saved with `save_result`.
        passes: the GX calls made: 1 when everything passed, up to 3.
    """

    rows: int | None
    batch_failures: list[str]
    row_reasons: dict[Any, list[str]]
    result_json: dict[str, Any]
    passes: int = 1
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def quarantined_keys(self) -> int:
        """Keys whose rows are to be quarantined."""
        return len(self.row_reasons)

    @property
    def passed_batch(self) -> bool:
        """True when no batch-level expectation failed."""
        return not self.batch_failures


def suite_path(spec: Spec, spec_dir: Path) -> Path | None:
    """The extra suite file named by `validation.suite`, resolved against the spec's folder."""
    if spec.validation.suite is None:
        return None
    path = Path(spec.validation.suite)
    return path if path.is_absolute() else spec_dir / path


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
            database already guarantees it (`key_is_unique`).
        column_types: the validated relation's column types as GX renders them (`relation_column_types`);
            a numeric feature stored as NUMERIC(p, s) is accepted with its precision, and one stored as an
            integer or boolean needs no check for NaN and infinities (a column of unknown type gets it).

    Returns:
        The suite (not registered in any context).

    Raises:
        SpecError: the suite file is missing or malformed, or a relative `validation.suite` was not resolved.
    """
    gx = _import_gx()
    expectations = _spec_expectations(spec, check_row_count=check_row_count, check_key_unique=check_key_unique,
                                      column_types=column_types or {})
    if extra_suite is None and spec.validation.suite is not None:
        if not Path(spec.validation.suite).is_absolute():
            raise SpecError(
                f"model {spec.name!r}: validation.suite {spec.validation.suite!r} is relative to the spec's "
                "folder; resolve it with ml_batch.validation.suite_path(spec, spec_dir) and pass extra_suite"
            )
        extra_suite = Path(spec.validation.suite)
    if extra_suite is not None:
        expectations.extend(_load_suite_file(extra_suite))
    return gx.ExpectationSuite(name=f"ml_batch.{spec.name}", expectations=expectations)


def relation_column_types(engine: sa.Engine, relation: str) -> dict[str, str]:
    """Column name -> type as GX renders it for PostgreSQL (`DOUBLE PRECISION`, `NUMERIC(12, 2)`, ...)."""
    schema, _, name = relation.rpartition(".")
    columns = sa.inspect(engine).get_columns(name, schema=schema or None)
    return {column["name"]: str(column["type"]) for column in columns}


def key_is_unique(engine: sa.Engine, spec: Spec) -> bool:
    """Whether the source table's own unique index (or primary key) on the key guarantees unique keys.

    Then the key's uniqueness cannot fail and GX need not check it (for 1,000,000 rows its GROUP BY, or
    even a COUNT(DISTINCT), is a third of the validation's time in PostgreSQL). A `source.query` is
    always checked.
    """
    if spec.source.table is None:
        return False
    from ml_batch.db.sqlfiles import render, render_regclass

    with engine.connect() as conn:
        return bool(conn.execute(render("select_key_is_unique"),
                                 {"table": render_regclass(spec.source.table), "key": spec.source.key}).scalar_one())


def validate_relation(
    spec: Spec, url: str, relation: str, suite: gx.ExpectationSuite, *, columns: Iterable[str],
    share_of: int | None = None,
) -> ValidationOutcome:
    """Validate the rows of a PostgreSQL table or view with GX, in the database, and key the failing rows.

    Args:
        spec: the model spec (its `source.key` names the key column, its `validation.max_quarantine_share`
            caps how many failing rows are listed).
        url: SQLAlchemy URL of the database (GX opens its own connection, closed before returning).
        relation: `schema.name` of the table or view holding exactly the rows to validate.
        suite: the suite to run (`build_suite`).
        columns: the relation's columns (to report a missing column once, by name).
        share_of: the rows `validation.max_quarantine_share` applies to (a shard passes its day's row
            count, so the verdict does not depend on the number of shards); None: the relation's rows.
            A row-level expectation failing on more rows than that share fails the batch at once.

    Returns:
        The outcome; the caller decides whether batch failures fail the run.
    """
    started = time.perf_counter()
    present = set(columns)
    batch, engine = _sql_batch(url, relation)
    try:
        expectations = list(suite.expectations)
        screened = [_screened(e) for e in expectations]
        screen = _run(batch, screened, _SCREEN_FORMAT)
        seconds = {"screen": time.perf_counter() - started}
        failed = [i for i, res in enumerate(screen) if not res.success]
        details: dict[int, ExpectationValidationResult] = {}
        passes = 1
        if failed:
            details.update(zip(failed, _run(batch, [_copy(expectations[i]) for i in failed], _SUMMARY_FORMAT),
                               strict=True))
            listed = [i for i in failed if _listable(spec, expectations[i], details[i], present, share_of)]
            passes = 2
            if listed:
                complete = {**_SUMMARY_FORMAT, "result_format": "COMPLETE",
                            "unexpected_index_column_names": [spec.source.key]}
                details.update(zip(listed, _run(batch, [_copy(expectations[i]) for i in listed], complete),
                                   strict=True))
                passes = 3
            seconds["details"] = time.perf_counter() - started - seconds["screen"]
    finally:
        engine.dispose()
    outcome = _interpret(spec, present, expectations, screen, details, passes, share_of)
    outcome.result_json.update(suite_name=suite.name)
    outcome.result_json["meta"].update(great_expectations_version=_import_gx().__version__, relation=relation)
    seconds = {k: round(v, 3) for k, v in seconds.items()}
    logger.info(
        "validated %s against %d expectations in %.2fs (%d GX passes %s): %d batch failures, %d keys quarantined",
        relation, len(expectations), time.perf_counter() - started, passes, seconds,
        len(outcome.batch_failures), outcome.quarantined_keys,
    )  # fmt: skip
    return replace(outcome, seconds=seconds)


def save_result(outcome: ValidationOutcome, folder: Path, model: str, day: datetime.date, run_id: str) -> Path:
    """Write the GX result JSON to `folder/model/YYYY-MM-DD/<run_id>.json`, atomically; return its path.

    `model` and `run_id` are made safe as file names (anything but letters, digits, '.', '_' and '-'
    becomes '_'), so an Airflow run id like `scheduled__2024-01-01T06:00:00+00:00` can be used as is.
    Writing the same run again replaces the file.
    """
    target_dir = folder / _safe_name(model, "model") / day.isoformat()
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{_safe_name(run_id, 'run_id')}.json"
    handle, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(result_text(outcome))
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("saved validation result to %s", target)
    return target


def result_text(outcome: ValidationOutcome) -> str:
    """The GX result as the JSON text both the file and the database hold."""
    return json.dumps(outcome.result_json, indent=2, sort_keys=True, default=str)


def store_result(engine: sa.Engine, outcome: ValidationOutcome, model: str, day: datetime.date, run_id: str,
                 shard: int) -> None:
    """Store the GX result of one shard of a run in the database (`reports`), replacing a retry's.

    The UI plugin reads it there: it has no access to a worker's `results_dir`.
    """
    with engine.begin() as conn:
        reports.store(conn, model=model, day=day, kind=reports.VALIDATION_RESULT, run_id=run_id,
                      part=f"s{shard}", content=result_text(outcome))


# --- GX set-up -------------------------------------------------------------------------------------


def _import_gx() -> Any:
    # Older GX 1.x releases read this when great_expectations is first imported; 1.24 has no analytics.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # GX logs ~200 INFO lines on import (docs-decorator and registry chatter), which would flood task logs;
    # keep its warnings unless someone configured the logger on purpose.
    gx_logger = logging.getLogger("great_expectations")
    if gx_logger.level == logging.NOTSET:
        gx_logger.setLevel(logging.WARNING)
    import great_expectations

    return great_expectations


def warm_gx() -> None:
    """Import Great Expectations and the parts a SQL validation loads on first use, without running anything.

    For a process that forks task processes (a Celery worker, see `ml_batch.airflow.preload`): the children
    inherit these modules instead of importing them once per task.
    """
    _import_gx()
    import great_expectations.datasource.fluent.postgres_datasource
    import great_expectations.execution_engine.sqlalchemy_execution_engine
    import great_expectations.expectations  # noqa: F401


def _sql_batch(url: str, relation: str) -> tuple[Batch, Any]:
    """A whole-table batch of `relation` in a fresh ephemeral, offline context, and GX's engine (to dispose).

    A table asset, not a query asset: GX reads a table's (or view's) columns from the catalog, but runs a
    query asset's whole query once just to learn its columns.
    """
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
    )
    context = gx.get_context(project_config=config, mode="ephemeral")
    from ml_batch.db.engine import with_session_options

    schema, _, name = relation.rpartition(".")
    # GX 1.x wants the schema in the connection, not on the asset (schema_name is deprecated); the session
    # is in UTC like every other ml-batch session, so the view's day bounds mean the same rows here.
    search_path = (f'-c search_path="{schema}"',) if schema else ()
    url = with_session_options(url, *search_path).render_as_string(hide_password=False)
    datasource = context.data_sources.add_postgres(name="ml_batch", connection_string=url)
    engine = datasource.get_engine()
    try:
        asset = datasource.add_table_asset(name="rows", table_name=name)
        return asset.add_batch_definition_whole_table("whole").get_batch(), engine
    except BaseException:
        engine.dispose()
        raise


def _run(
    batch: Batch, expectations: list[Expectation], result_format: dict[str, Any]
) -> list[ExpectationValidationResult]:
    """Validate `expectations` on the batch; their results in the same order (GX orders them its own way)."""
    suite = _import_gx().ExpectationSuite(name="ml_batch.pass", expectations=expectations)
    result = batch.validate(suite, result_format=result_format)
    by_identity: dict[str, list[ExpectationValidationResult]] = {}
    for res in result.results:
        by_identity.setdefault(_identity(res.expectation_config), []).append(res)
    ordered = []
    for expectation in expectations:
        found = by_identity.get(_identity(expectation.configuration))
        if not found:
            raise RuntimeError(f"GX returned no result for {expectation.expectation_type} "
                               f"{dict(expectation.configuration.kwargs)}: cannot match its results to the suite")
        ordered.append(found.pop(0))
    return ordered


def _identity(config: Any) -> str:
    """An expectation's type and arguments (without the batch GX adds), as one comparable string."""
    if config is None:
        return ""
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    return json.dumps([config.type, kwargs], sort_keys=True, default=str)


def _copy(expectation: Expectation) -> Expectation:
    """The same expectation as a new object (an expectation belongs to one suite)."""
    return expectation.configuration.to_domain_obj()


def _screened(expectation: Expectation) -> Expectation:
    """The cheapest expectation that fails whenever `expectation` fails, for the screening pass.

    Only key uniqueness has one: "proportion of unique values is 1" is one COUNT(DISTINCT) where
    "values are unique" is a GROUP BY over the key; both ignore nulls. The real expectation runs in pass 2
    when the screen fails.
    """
    import great_expectations.expectations as gxe

    kwargs = expectation.configuration.kwargs
    if expectation.expectation_type == "expect_column_values_to_be_unique" and kwargs.get("mostly") in (None, 1, 1.0) \
            and not kwargs.get("row_condition"):
        return gxe.ExpectColumnProportionOfUniqueValuesToBeBetween(
            column=kwargs["column"], min_value=1.0, max_value=1.0, meta=expectation.meta
        )
    return _copy(expectation)


def _is_row_level(expectation: Expectation) -> bool:
    return any(base.__name__ in _ROW_LEVEL for base in type(expectation).__mro__)


def _listable(
    spec: Spec, expectation: Expectation, res: ExpectationValidationResult, present: set[str], share_of: int | None
) -> bool:
    """Whether pass 3 should list this failed expectation's failing rows.

    Not when it is table-level, could not run, names a missing column, or fails on more rows than the
    quarantine share allows (that fails the batch anyway; listing a million keys would only cost memory).
    """
    if not _is_row_level(expectation) or _exception_messages(res):
        return False
    if any(c not in present for c in _columns_of(dict(expectation.configuration.kwargs))):
        return False
    details = res.result or {}
    count, total = details.get("unexpected_count"), details.get("element_count")
    if not isinstance(count, int) or not isinstance(total, int) or count == 0:
        return False
    return not _over_share(spec, count, share_of if share_of is not None else total)


def _over_share(spec: Spec, count: int, basis: int) -> bool:
    return count > spec.validation.max_quarantine_share * basis


# --- building the suite ----------------------------------------------------------------------------


def _spec_expectations(
    spec: Spec, *, check_row_count: bool, check_key_unique: bool, column_types: dict[str, str]
) -> list[Expectation]:
    import great_expectations.expectations as gxe

    meta = {"source": f"spec {spec.name}"}
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
    for feature in spec.features:
        stored = column_types.get(feature.name, "")
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


def _load_suite_file(path: Path) -> list[Expectation]:
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

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
    meta_source = {"source": f"suite {path.name}"}
    expectations: list[Expectation] = []
    for number, entry in enumerate(entries):
        where = f"{path}: expectations[{number}]"
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
        try:
            configuration = ExpectationConfiguration(
                type=kind, kwargs=kwargs, meta={**meta_source, **meta}, notes=entry.get("notes")
            )
            expectations.append(configuration.to_domain_obj())
        except ExpectationNotFoundError as exc:
            raise SpecError(f"{where}: unknown expectation type {kind!r} ({exc.message})") from exc
        except GreatExpectationsError as exc:
            raise SpecError(f"{where} ({kind}): invalid expectation: {exc.message}") from exc
        except (ValueError, TypeError) as exc:  # pydantic (v1) ValidationError is a ValueError
            problem = " ".join(str(exc).split())
            raise SpecError(f"{where} ({kind}): invalid kwargs {kwargs}: {problem}") from exc
    logger.info("loaded %d expectations from %s", len(expectations), path)
    return expectations


# --- reading the result ----------------------------------------------------------------------------


def _interpret(
    spec: Spec, present: set[str], expectations: list[Expectation], screen: list[ExpectationValidationResult],
    details: dict[int, ExpectationValidationResult], passes: int, share_of: int | None,
) -> ValidationOutcome:
    key = spec.source.key
    cap = spec.validation.max_quarantine_share
    categorical = {f.name for f in spec.features if f.type == "categorical"}
    batch_failures: list[str] = []
    reported_missing: set[str] = set()
    row_reasons: dict[Any, list[str]] = {}
    null_key_rows = 0  # failing rows without a key: they cannot be quarantined
    key_nulls_reported = False
    rows: int | None = None

    # table-level results first, so a missing column is reported once, by the columns check
    order = sorted(details, key=lambda i: not expectations[i].expectation_type.startswith("expect_table_"))
    for index in order:
        res = details[index]
        config = res.expectation_config or expectations[index].configuration
        kind, kwargs = config.type, dict(config.kwargs)
        columns = _columns_of(kwargs)
        result = res.result or {}
        total, count = result.get("element_count"), result.get("unexpected_count")
        rows = total if isinstance(total, int) else rows
        basis = share_of if share_of is not None else total  # the rows the quarantine share applies to
        if res.success:  # the screen failed, the expectation itself passed
            continue
        errors = _exception_messages(res)
        if any(c not in present for c in columns):
            missing = [c for c in columns if c not in present and c not in reported_missing]
            batch_failures.extend(f"{column}: column is missing (needed by {kind})" for column in missing)
            reported_missing.update(missing)
        elif errors:
            batch_failures.append(f"{_label(columns)}{kind} could not be evaluated: {'; '.join(errors)}")
        elif columns == [key] and kind == "expect_column_values_to_not_be_null":
            batch_failures.append(f"{key}: {count} rows have a null key ({kind}); they cannot be quarantined by key")
            key_nulls_reported = True
        elif "unexpected_index_list" in result:
            text = f"{_label(columns)}{kind}{_detail(kind, kwargs, key)}"
            for entry in result["unexpected_index_list"]:
                value = entry.get(key) if isinstance(entry, dict) else None
                if value is None:
                    null_key_rows += 1
                    continue
                shown = _got(entry, columns, categorical)
                reason = RowReason(f"{text}{GOT}{shown}" if shown else text, *_failing_value(entry, columns))
                reasons = row_reasons.setdefault(_native(value), [])
                if reason not in reasons:
                    reasons.append(reason)
        elif (_is_row_level(expectations[index]) and isinstance(count, int) and isinstance(basis, int) and basis
              and _over_share(spec, count, basis)):
            batch_failures.append(
                f"{_label(columns)}{kind}{_detail(kind, kwargs, key)}: {count} of {basis} rows failed "
                f"({count / basis:.1%}), above validation.max_quarantine_share {cap:.1%}; e.g. {_examples(result)}"
            )
        else:
            line = _batch_failure(kind, columns, kwargs, result, key, reported_missing)
            if line:
                batch_failures.append(line)

    if null_key_rows and not key_nulls_reported:  # only when a custom suite does not check the key
        batch_failures.append(f"{key}: {null_key_rows} failing rows have a null key and cannot be quarantined")
    for reasons in row_reasons.values():
        reasons.sort()  # by column, as every reason starts with it
    results = [_result_json(details.get(index, res)) for index, res in enumerate(screen)]
    result_json: dict[str, Any] = {
        "success": not batch_failures and not row_reasons,
        "results": results,
        "statistics": {
            "evaluated_expectations": len(results),
            "successful_expectations": sum(1 for r in results if r["success"]),
            "unsuccessful_expectations": sum(1 for r in results if not r["success"]),
        },
    }
    result_json.setdefault("meta", {})["ml_batch"] = {
        "model": spec.name,
        "key_column": key,
        "rows": rows,
        "gx_passes": passes,
        "results": "pass 1 (BOOLEAN_ONLY) for passing expectations, pass 2/3 (SUMMARY/COMPLETE) for failing ones",
        "unexpected_index_list": f"the failing rows' {key} and values (unexpected_index_column_names)",
        "batch_failures": batch_failures,
        "quarantined_keys": len(row_reasons),
    }
    return ValidationOutcome(rows=rows, batch_failures=batch_failures, row_reasons=row_reasons,
                             result_json=result_json, passes=passes)


def _result_json(res: ExpectationValidationResult) -> dict[str, Any]:
    """GX's JSON of one result, except that failing NaN and +-Infinity values read "NaN", "inf", "-inf".

    GX writes a NaN as null (the same as a NULL) and an infinity as a bare `Infinity`, which is not JSON.
    """
    from great_expectations.util import convert_to_json_serializable

    payload: dict[str, Any] = res.to_json_dict()
    if res.result:
        payload["result"] = convert_to_json_serializable(_specials_as_text(res.result))
    return dict(_specials_as_text(payload))  # infinite bounds of the expectation's kwargs


def _specials_as_text(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _specials_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_specials_as_text(item) for item in value]
    return _special_text(value) or value


def _batch_failure(
    kind: str, columns: list[str], kwargs: dict[str, Any], details: dict[str, Any], key: str, reported: set[str]
) -> str | None:
    """The line for a failed table-level (or otherwise unmappable) expectation; None if already reported."""
    if kind == "expect_table_columns_to_match_set":
        mismatched = (details.get("details") or {}).get("mismatched") or {}
        absent = [c for c in mismatched.get("missing", []) if c not in reported]
        reported.update(absent)
        parts = [f"missing columns {absent}"] if absent else []
        if mismatched.get("unexpected"):
            parts.append(f"unexpected columns {mismatched['unexpected']}")
        return f"{kind}: {', '.join(parts)}" if parts else None
    if kind == "expect_table_row_count_to_be_between":
        bounds = _between(kwargs.get("min_value"), kwargs.get("max_value"))
        return f"{kind}: {details.get('observed_value')} rows, expected {bounds}"
    if "unexpected_count" in details:
        observed = f"{details['unexpected_count']} unexpected values"
    else:
        observed = f"observed {_value(details.get('observed_value'))}"
    return f"{_label(columns)}{kind}{_detail(kind, kwargs, key)}: {observed}"


def _label(columns: Sequence[str]) -> str:
    return f"{', '.join(columns)}: " if columns else ""


def _columns_of(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs and "column_B" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return list(kwargs.get("column_list") or [])


def _exception_messages(res: ExpectationValidationResult) -> list[str]:
    """GX 1.24 puts one dict per failed metric in `exception_info` (or a flat dict when none failed)."""
    info = res.exception_info or {}
    entries: Iterable[Any] = [info] if "raised_exception" in info else info.values()
    messages = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "unknown error")
            if message not in messages:
                messages.append(message)
    return messages


def _detail(kind: str, kwargs: dict[str, Any], key: str) -> str:
    """The expectation's parameters, for a reason line: ' (min 0, max 100)'."""
    if kind == "expect_column_values_to_be_between":
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        low_text = "> -inf" if low == -math.inf and kwargs.get("strict_min") else _bound(low)
        high_text = "< inf" if high == math.inf and kwargs.get("strict_max") else _bound(high)
        return f" (min {low_text}, max {high_text})"
    if kind == "expect_column_values_to_be_in_set":
        return f" (allowed: {_listing(kwargs.get('value_set') or [])})"
    if kind == "expect_column_values_to_not_be_in_set":
        return f" (not allowed: {_listing(kwargs.get('value_set') or [])})"
    if kind == "expect_column_values_to_be_in_type_list":
        types = kwargs.get("type_list") or []
        return " (numeric types)" if list(types) == list(NUMERIC_TYPES) else f" (types: {_listing(types)})"
    if kind == "expect_column_values_to_be_unique":
        return " (key not unique)" if kwargs.get("column") == key else ""
    skip = {"column", "column_A", "column_B", "column_list", "batch_id", "result_format", "catch_exceptions"}
    shown = [
        f"{name} {_bound(value) if isinstance(value, float) else _value(value)}"
        for name, value in kwargs.items()
        if name not in skip and value is not None
    ]
    return f" ({', '.join(shown)})" if shown else ""


def _got(entry: dict[str, Any], columns: Sequence[str], categorical: set[str]) -> str:
    """A failing row's values of the expectation's columns, from GX's unexpected_index_list entry.

    A categorical feature's value is shown as its canonical category ('7', not 7.0 from a float column).
    """
    def shown(column: str) -> str:
        value = entry.get(column)
        if column in categorical and category_text(value) != MISSING_CATEGORY:
            return repr(category_text(value))
        return _value(value)

    if len(columns) == 1:
        return shown(columns[0])
    return ", ".join(f"{column}={shown(column)}" for column in columns)


def _failing_value(entry: dict[str, Any], columns: Sequence[str]) -> tuple[str | None, Any]:
    """The column and value a RowReason keeps: the expectation's one column, or none when it has several."""
    return (columns[0], _native(entry.get(columns[0]))) if len(columns) == 1 else (None, None)


def _between(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"between {_bound(low)} and {_bound(high)}"
    if low is not None:
        return f"at least {_bound(low)}"
    return f"at most {_bound(high)}" if high is not None else "any number"


def _bound(value: Any) -> str:
    value = _native(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "none" if value is None else str(value)


def _value(value: Any) -> str:
    """A value for a message: 'null', 'NaN', 'inf', '-inf', a quoted string or the value's text."""
    value = _native(value)
    if value is None or value is pd.NA or value is pd.NaT:
        return "null"
    return _special_text(value) or (repr(value) if isinstance(value, str) else str(value))


def _special_text(value: Any) -> str | None:
    """'NaN', 'inf' or '-inf' for a float or decimal that is no finite number; None for anything else."""
    value = _native(value)
    if _is_nan(value):
        return "NaN"
    if (isinstance(value, float) and math.isinf(value)) or (isinstance(value, Decimal) and value.is_infinite()):
        return "inf" if value > 0 else "-inf"
    return None


def _is_nan(value: Any) -> bool:
    """A float or decimal NaN (what PostgreSQL's 'NaN' reads as through psycopg2), not a NULL."""
    value = _native(value)
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, Decimal) and value.is_nan())


def _examples(result: dict[str, Any]) -> str:
    """Distinct failing values among GX's first examples (SUMMARY lists up to 20 failing rows)."""
    counts = result.get("partial_unexpected_counts") or []
    values = [c.get("value") for c in counts] if counts else list(result.get("partial_unexpected_list") or [])
    return _listing(values)


def _listing(values: Sequence[Any]) -> str:
    shown = ", ".join(_value(v) for v in list(values)[:_MAX_LISTED])
    return shown if len(values) <= _MAX_LISTED else f"{shown}, ... ({len(values)} in all)"


def _native(value: Any) -> Any:
    """numpy scalars -> Python scalars, so keys and messages read as plain values."""
    return value.item() if isinstance(value, np.generic) else value


def _safe_name(value: str, what: str) -> str:
    safe = _SAFE_NAME_RE.sub("_", value).strip("._")
    if not safe:
        raise ValueError(f"{what} {value!r} cannot be used as a file name: nothing left after making it safe")
    return safe

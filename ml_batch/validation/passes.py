"""Validate a shard of feature rows with Great Expectations (GX Core 1.x) inside PostgreSQL, before scoring.

How GX is run, and why: GX validates the shard *where the rows are*, with its PostgreSQL (SQL) datasource
on a view of exactly the rows the shard scores (`relation`, see `ml_batch.validation.session`). GX folds the
row-level checks of all columns into one aggregate query, so a shard costs one pass over its rows in
PostgreSQL plus GX's fixed overhead, whatever the row count; the rows themselves never travel to Python for
validation. In pandas, GX's cost was almost all fixed overhead per call (~0.3-0.5 s to build its metric
graph), paid once per streamed chunk: 7.0 s for 1,000,000 rows x 20 features in 16 MB chunks, against
1.25 s here (`make bench`).

Validation runs in up to three passes, each only as wide as it must be:

1. the whole suite with result format BOOLEAN_ONLY: counts only, no failing rows fetched; the key's
   uniqueness is *screened* by the cheaper aggregate "proportion of unique values = 1" (one
   COUNT(DISTINCT) instead of a GROUP BY), so a clean shard costs three aggregate queries;
2. only if something failed: the failing expectations again, with SUMMARY (counts, observed values,
   examples); a column failing on more rows than the quarantine share allows
   (`ValidationSpec.quarantine_exceeded`) fails the batch here, before millions of failing keys are listed;
3. the failing row-level expectations with COMPLETE and `unexpected_index_column_names=[key]`: the
   failing rows' keys and values, all of them (`partial_unexpected_count` is raised to the largest failing
   count: GX's SQL engine lists no more failing rows than that, 20 by default, even with COMPLETE).
   A scoring day keys them by the entity key (one row per key and day); training's window holds a recurring
   entity's rows of many days, so it keys them by a row identity column of its view instead (`row_key`,
   `ml_batch.model.validity`).

What the results mean is `ml_batch.validation.interpret`; the saved result is `ml_batch.validation.results`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ml_batch.spec import Spec
from ml_batch.validation.interpret import (
    columns_of,
    exception_messages,
    interpret,
    is_row_level,
    share_basis,
)
from ml_batch.validation.results import RunFacts, ValidationOutcome, result_document
from ml_batch.validation.session import copy_expectation, import_gx, run_expectations, screened, sql_batch

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.datasource.fluent.interfaces import Batch
    from great_expectations.expectations.expectation import Expectation

logger = logging.getLogger(__name__)

_SCREEN_FORMAT: dict[str, Any] = {"result_format": "BOOLEAN_ONLY"}
_SUMMARY_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "return_unexpected_index_query": False}


def validate_relation(
    spec: Spec, url: str, relation: str, suite: gx.ExpectationSuite, *, columns: Iterable[str],
    share_of: int | None = None, row_key: str | None = None,
) -> ValidationOutcome:
    """Validate the rows of a PostgreSQL table or view with GX, in the database, and key the failing rows.

    Args:
        spec: the model spec (its `source.key` names the key column, its `validation.max_quarantine_share`
            caps how many failing rows are listed).
        url: SQLAlchemy URL of the database (GX opens its own connection, closed before returning).
        relation: `schema.name` of the table or view holding exactly the rows to validate.
        suite: the suite to run (`ml_batch.validation.suite.build_suite`).
        columns: the relation's columns (to report a missing column once, by name).
        share_of: the rows `validation.max_quarantine_share` applies to (a shard passes its day's row
            count, so the verdict does not depend on the number of shards); None: the relation's rows.
            A row-level expectation failing on more rows than that share fails the batch at once.
        row_key: the column that identifies a failing row (GX's `unexpected_index_column_names`) and keys
            `row_reasons`; None: the spec's key (a scoring day has one row per key).

    Returns:
        The outcome; the caller decides whether batch failures fail the run.
    """
    started = time.perf_counter()
    present = set(columns)
    expectations = list(suite.expectations)
    batch, engine = sql_batch(url, relation)
    try:
        screen = run_expectations(batch, [screened(e) for e in expectations], _SCREEN_FORMAT)
        seconds = {"screen": time.perf_counter() - started}
        details, passes = _detail_passes(spec, batch, expectations, screen, present, share_of,
                                         row_key or spec.source.key)
        if passes > 1:
            seconds["details"] = time.perf_counter() - started - seconds["screen"]
    finally:
        engine.dispose()
    findings = interpret(spec, present, expectations, details, share_of, row_key=row_key)
    facts = RunFacts(suite_name=suite.name, relation=relation, gx_version=import_gx().__version__, passes=passes)
    seconds = {k: round(v, 3) for k, v in seconds.items()}
    outcome = ValidationOutcome(rows=findings.rows, batch_failures=findings.batch_failures,
                                row_reasons=findings.row_reasons, passes=passes, seconds=seconds,
                                result_json=result_document(spec, screen, details, findings, facts))
    logger.info(
        "validated %s against %d expectations in %.2fs (%d GX passes %s): %d batch failures, %d keys quarantined",
        relation, len(expectations), time.perf_counter() - started, passes, seconds,
        len(outcome.batch_failures), outcome.quarantined_keys,
    )  # fmt: skip
    return outcome


def _detail_passes(
    spec: Spec, batch: Batch, expectations: list[Expectation], screen: list[ExpectationValidationResult],
    present: set[str], share_of: int | None, row_key: str,
) -> tuple[dict[int, ExpectationValidationResult], int]:
    """Passes 2 and 3 for the screens that failed: index -> detailed result, and the GX calls made in all."""
    failed = [i for i, res in enumerate(screen) if not res.success]
    if not failed:
        return {}, 1
    summary = run_expectations(batch, [copy_expectation(expectations[i]) for i in failed], _SUMMARY_FORMAT)
    details = dict(zip(failed, summary, strict=True))
    listed = [i for i in failed if _listable(spec, expectations[i], details[i], present, share_of)]
    if not listed:
        return details, 2
    rows = run_expectations(batch, [copy_expectation(expectations[i]) for i in listed],
                            _complete_format(row_key, [details[i] for i in listed]))
    return {**details, **dict(zip(listed, rows, strict=True))}, 3


def _complete_format(key: str, summaries: list[ExpectationValidationResult]) -> dict[str, Any]:
    """Pass 3's result format: every failing row's key and values.

    GX's SQL engine lists at most `partial_unexpected_count` failing rows (20 unless told), even with COMPLETE;
    a row it did not list would not be quarantined but scored. So it is told the largest failing count among
    the listed expectations (each within the quarantine share, by `_listable`).
    """
    most = max(int((res.result or {}).get("unexpected_count") or 0) for res in summaries)
    return {**_SUMMARY_FORMAT, "result_format": "COMPLETE", "unexpected_index_column_names": [key],
            "partial_unexpected_count": most}


def _listable(
    spec: Spec, expectation: Expectation, res: ExpectationValidationResult, present: set[str], share_of: int | None
) -> bool:
    """Whether pass 3 should list this failed expectation's failing rows.

    Not when it is table-level, could not run, names a missing column, or fails on more rows than the
    quarantine share allows (that fails the batch anyway; listing a million keys would only cost memory).
    """
    if not is_row_level(expectation) or exception_messages(res):
        return False
    if any(c not in present for c in columns_of(dict(expectation.configuration.kwargs))):
        return False
    details = res.result or {}
    count, total = details.get("unexpected_count"), details.get("element_count")
    if not isinstance(count, int) or not isinstance(total, int) or count == 0:
        return False
    return not spec.validation.quarantine_exceeded(count, share_basis(share_of, total))

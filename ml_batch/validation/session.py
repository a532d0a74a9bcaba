"""Great Expectations itself: importing it, an offline context on a PostgreSQL relation, one GX call.

GX validates the rows *where they are*, with its PostgreSQL (SQL) datasource on a table or view of exactly
the rows to validate: GX folds the row-level checks of all columns into one aggregate query, and the rows
never travel to Python for validation. How many calls are made and with which result format is
`ml_batch.validation.passes`.

GX is imported lazily (it takes seconds to import), so importing this module at DAG-parse time is cheap.
GX 1.24 contains no usage-analytics client any more (no `great_expectations.analytics`, no posthog), and an
ephemeral context with in-memory stores sends nothing anywhere; as belt and braces for older 1.x releases
`GX_ANALYTICS_ENABLED` is set to false before GX is first imported and the context is created with
`analytics_enabled=False`. GX's "Calculating Metrics" tqdm progress bars are switched off in the
context config, and its logger is set to WARNING (it logs hundreds of INFO lines on import).

GX catches the errors of the metrics it computes and reports the expectation as one that "could not be
evaluated", keeping only the error's text. A database fault among them (a refused or lost connection, a
timeout: `ml_batch.db.faults`) is raised by `run_expectations` as a transient `TransientDatabaseError`, never
left to read as a failed check of the data. GX opens one connection at a time (its connection test, then its
execution engine's own for the metrics); a GX call whose connection the server refused for want of a free
slot is made again with back-off (`faults.connect_patiently`: GX only reads, so a call made twice is the same).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ml_batch.errors import first_line_of

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationValidationResult,
    )
    from great_expectations.datasource.fluent.interfaces import Batch
    from great_expectations.expectations.expectation import Expectation


def import_gx() -> Any:
    """The `great_expectations` module, imported with analytics off and its INFO chatter silenced."""
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
    import_gx()
    import great_expectations.datasource.fluent.postgres_datasource
    import great_expectations.execution_engine.sqlalchemy_execution_engine
    import great_expectations.expectations  # noqa: F401


def sql_batch(url: str, relation: str) -> tuple[Batch, Any]:
    """A whole-table batch of `relation` in a fresh ephemeral, offline context, and GX's engine (to dispose).

    A table asset, not a query asset: GX reads a table's (or view's) columns from the catalog, but runs a
    query asset's whole query once just to learn its columns.
    """
    from ml_batch.db.engine import with_session_options
    from ml_batch.db.faults import connect_patiently

    schema, _, name = relation.rpartition(".")
    # GX 1.x wants the schema in the connection, not on the asset (schema_name is deprecated); the session
    # is in UTC like every other ml-batch session, so the view's day bounds mean the same rows here.
    search_path = (f'-c search_path="{schema}"',) if schema else ()
    url = with_session_options(url, *search_path).render_as_string(hide_password=False)
    # Adding the datasource tests its connection: a fresh context per attempt (a datasource name is added once).
    datasource = connect_patiently(
        lambda: _offline_context().data_sources.add_postgres(name="ml_batch", connection_string=url),
        what=f"GX connecting to validate {relation}")
    engine = datasource.get_engine()
    try:
        asset = datasource.add_table_asset(name="rows", table_name=name)
        return asset.add_batch_definition_whole_table("whole").get_batch(), engine
    except BaseException:
        engine.dispose()
        raise


def _offline_context() -> Any:
    """An ephemeral GX context: in-memory stores, no analytics, no progress bars."""
    gx = import_gx()
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
    return gx.get_context(project_config=config, mode="ephemeral")


def run_expectations(
    batch: Batch, expectations: list[Expectation], result_format: dict[str, Any]
) -> list[ExpectationValidationResult]:
    """Validate `expectations` on the batch; their results in the same order (GX orders them its own way).

    Raises:
        TransientDatabaseError: GX could not evaluate an expectation because of a database fault (module doc).
        RuntimeError: GX returned no result for one of the expectations.
    """
    from ml_batch.db.faults import connect_patiently, raise_database_fault

    suite = import_gx().ExpectationSuite(name="ml_batch.pass", expectations=expectations)

    def validate() -> Any:
        result = batch.validate(suite, result_format=result_format)
        for res in result.results:
            kind = getattr(res.expectation_config, "type", None) or "an expectation"
            raise_database_fault(exception_messages(res), what=f"GX evaluating {kind}")
        return result

    result = connect_patiently(validate, what="GX validating")
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


def exception_messages(res: ExpectationValidationResult) -> list[str]:
    """The first line of each error GX caught evaluating `res` (a database error's later lines are its SQL and
    bind parameters: they go to no message). GX 1.24 puts one dict per failed metric in `exception_info` (or
    a flat dict when none failed)."""
    info = res.exception_info or {}
    entries: Iterable[Any] = [info] if "raised_exception" in info else info.values()
    messages = []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = first_line_of(str(entry.get("exception_message") or "")) or "unknown error"
            if message not in messages:
                messages.append(message)
    return messages


def _identity(config: Any) -> str:
    """An expectation's type and arguments (without the batch GX adds), as one comparable string."""
    if config is None:
        return ""
    kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
    return json.dumps([config.type, kwargs], sort_keys=True, default=str)


def copy_expectation(expectation: Expectation) -> Expectation:
    """The same expectation as a new object (an expectation belongs to one suite)."""
    return expectation.configuration.to_domain_obj()


def screened(expectation: Expectation) -> Expectation:
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
    return copy_expectation(expectation)

"""The last step of a day's run: check the whole day, then publish it atomically (or, for a dry run, drop it).

The day is checked as a whole (every shard finished, the row count within `validation.min_rows/max_rows`,
the quarantine share within its rule, the staging audit), then, in one transaction, stamped, indexed and
swapped in as the day's partition (`ml_batch.run.predictions`), recorded as the day's published run, and the
run marked `success`. A dry run performs every check and then drops what it staged: nothing reaches the
predictions or quarantine tables.

Failures: any failure marks the run failed (its first error kept) and publishes nothing. A failure of the
day's data (row bounds, quarantine share, audit: deterministic, `ml_batch.errors.is_deterministic`) drops the
staging table and the snapshot as the step's lease ends (`ml_batch.run.lifecycle.RunLease`, the one rule for
every step of a run): no retry of this plan can publish. Any other failure (a lock not granted, a lost
connection) keeps them, so publishing the same plan again is the retry. A retry of a day this run already
published returns the recorded summary and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

import sqlalchemy as sa

from ml_batch.db.catalog import drop_views, table_exists
from ml_batch.db.locks import DEFAULT_LOCKING, SwapLocking
from ml_batch.errors import PublishError, ValidationFailed, first_line, summary
from ml_batch.model import registry
from ml_batch.run import lifecycle, quarantine, runs, snapshot
from ml_batch.run.names import shard_view
from ml_batch.run.plan import RunPlan
from ml_batch.run.predictions import record_publication, swap_in
from ml_batch.run.staging import audit_staging, drop_staging, index_and_analyze_staging, stamp_staging
from ml_batch.spec import Spec
from ml_batch.steps import StepResult

logger = logging.getLogger(__name__)


class RunSummary(StepResult):
    """What a finished run did (also in the `runs` table)."""

    model: str
    day: dt.date
    run_id: str
    version: int
    status: str
    extracted: int
    scored: int
    quarantined: int
    score_mean: float | None
    stage_seconds: dict[str, float]
    partial: bool = False  # published although its completeness checks refused it (allow_partial)


def publish_run(engine: sa.Engine, plan: RunPlan, *, locking: SwapLocking = DEFAULT_LOCKING) -> RunSummary:
    """Check the whole day, then publish it atomically (see the module docstring)."""
    spec = plan.spec
    # The run is alive while it publishes; a failure of its data drops its objects as the lease ends.
    with lifecycle.RunLease(engine, plan.model, plan.run_id, spec=spec):
        try:
            return _publish_run(engine, spec, plan, locking)
        except Exception as exc:  # record it on the run (never hiding it), then re-raise
            runs.fail(engine, model=plan.model, run_id=plan.run_id, error=summary(exc))
            raise
        finally:  # a shard killed while GX ran (SIGKILL, OOM) cannot drop its view itself
            drop_views(engine, [shard_view(spec, plan.run_id, shard) for shard in range(plan.shards)])


def _publish_run(engine: sa.Engine, spec: Spec, plan: RunPlan, locking: SwapLocking) -> RunSummary:
    started = time.perf_counter()
    with engine.begin() as conn:
        staged = table_exists(conn, plan.staging_table)
        recorded = None if staged else runs.get(conn, plan.model, plan.run_id)
        totals = runs.shard_totals(conn, plan.model, plan.run_id)
    if not staged:
        return _already_done(engine, spec, plan, recorded)
    _check_day(spec, plan, totals)
    classes = registry.get_version(engine, spec.name, plan.version).classes if spec.model.task == "multiclass" \
        else None
    with engine.begin() as conn:
        result = _commit_day(conn, spec, plan, totals, locking, started, classes)
    logger.info("%s day %s %s: %d rows, %d scored, %d quarantined, version %d", spec.name, plan.day,
                "checked (dry run, nothing published)" if plan.dry_run else "published", result.extracted,
                result.scored, result.quarantined, plan.version)
    return result


def _already_done(engine: sa.Engine, spec: Spec, plan: RunPlan, recorded: dict[str, Any] | None) -> RunSummary:
    """The staging table is gone: the run's recorded summary if it finished (a retried publish), else an error."""
    _discard_snapshot(engine, spec, plan)  # nothing of this plan can publish any more
    if recorded is not None and recorded["status"] in runs.FINISHED:
        logger.info("%s day %s: run %s already finished (%s); nothing to do", spec.name, plan.day, plan.run_id,
                    recorded["status"])
        return RunSummary(model=spec.name, day=plan.day, run_id=plan.run_id, version=recorded["model_version"],
                          status=recorded["status"], extracted=recorded["rows_extracted"],
                          scored=recorded["rows_scored"], quarantined=recorded["rows_quarantined"],
                          score_mean=recorded["score_mean"], stage_seconds=recorded["stage_seconds"],
                          partial=recorded["partial"])
    raise PublishError(
        f"model {spec.name!r} day {plan.day}: the staging table {plan.staging_table} of run {plan.run_id!r} "
        "is gone (dropped after a failure no retry can fix, or by a clean-up); nothing was published: "
        "plan the run again"
    )


def _check_day(spec: Spec, plan: RunPlan, totals: dict[str, Any]) -> None:
    """The day as a whole: every shard finished, its rows within bounds, its quarantine within the share rule."""
    rules, extracted, quarantined = spec.validation, totals["extracted"], totals["quarantined"]
    if totals["shards_done"] != plan.shards:
        raise ValidationFailed(
            f"model {spec.name!r} day {plan.day}: {totals['shards_done']} of {plan.shards} shards finished; "
            "refusing to publish a partial day"
        )
    if extracted < rules.min_rows or (rules.max_rows is not None and extracted > rules.max_rows):
        raise ValidationFailed(
            f"model {spec.name!r} day {plan.day}: {extracted} rows extracted, expected between {rules.min_rows} "
            f"and {rules.max_rows if rules.max_rows is not None else 'no upper bound'} "
            "(validation.min_rows/max_rows); nothing was published"
        )
    if rules.quarantine_exceeded(quarantined, extracted):
        raise ValidationFailed(
            f"model {spec.name!r} day {plan.day}: {quarantined} of {extracted} rows quarantined "
            f"({quarantined / extracted:.1%}), above validation.max_quarantine_share "
            f"{rules.max_quarantine_share:.1%}; nothing was published (see {spec.name!r} rows in the quarantine "
            "table)"
        )


def _commit_day(conn: sa.Connection, spec: Spec, plan: RunPlan, totals: dict[str, Any], locking: SwapLocking,
                started: float, classes: list[str] | None) -> RunSummary:
    """Stamp and audit the staged day (a multiclass day against the pinned version's `classes`), then publish it
    (or drop it, for a dry run) and record the run: in the caller's transaction, so nothing is left to fail once
    the day is published."""
    stamp_staging(conn, plan.staging_table, day=plan.day, model=spec.name, version=plan.version,
                  artifact_sha256=plan.artifact_sha256, run_id=plan.run_id)
    audit = audit_staging(conn, spec, plan.staging_table, day=plan.day, version=plan.version,
                          expected_rows=totals["scored"], classes=classes)
    snapshot.drop_snapshot(conn, spec, plan.run_id)  # with the day's fate, in the same transaction
    if plan.dry_run:
        drop_staging(conn, plan.staging_table)
        quarantine.clear_run(conn, spec.name, plan.run_id)
    else:
        # Indexes and statistics first, then the swap (it alone locks the predictions table), then the
        # bookkeeping.
        index_and_analyze_staging(conn, spec, plan.staging_table)
        swap_in(conn, spec, plan.staging_table, plan.day, locking)
        record_publication(conn, spec, day=plan.day, run_id=plan.run_id, version=plan.version)
        quarantine.drop_superseded(conn, spec, plan.day, plan.run_id)
    status = runs.DRY_RUN if plan.dry_run else runs.SUCCESS
    stage_seconds = {**totals["stage_seconds"], "publish": round(time.perf_counter() - started, 3)}
    runs.finish(conn, model=plan.model, run_id=plan.run_id, status=status, extracted=totals["extracted"],
                scored=totals["scored"], quarantined=totals["quarantined"], score_mean=audit.score_mean,
                stage_seconds=stage_seconds)
    return RunSummary(model=spec.name, day=plan.day, run_id=plan.run_id, version=plan.version, status=status,
                      extracted=totals["extracted"], scored=totals["scored"], quarantined=totals["quarantined"],
                      score_mean=audit.score_mean, stage_seconds=stage_seconds, partial=plan.partial)


def _discard_snapshot(engine: sa.Engine, spec: Spec, plan: RunPlan) -> None:
    """Drop the run's snapshot after a failure no retry of the plan can fix; a failure to drop it is logged,
    never raised (it must not hide the error being reported; the cleanup of dead runs drops it later)."""
    try:
        with engine.begin() as conn:
            snapshot.drop_snapshot(conn, spec, plan.run_id)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("could not drop the day snapshot of run %s: %s", plan.run_id, first_line(exc))

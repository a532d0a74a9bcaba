"""Run bookkeeping: one `runs` row per run (and a `run_shards` row per shard), which the CLI shows.

Invariant kept by CHECK constraints in the database: rows_extracted = rows_scored + rows_quarantined,
for every shard and for every finished run.

A run's `error` keeps its first failure (later ones are appended after it), each as one line (the first line
of its cause: the traceback goes to the log), also when a retry then succeeds: the cause of a retried failure
is never lost. A new plan of the run starts it afresh.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on, insert

from ml_batch.db import tables
from ml_batch.db.tables import run_shards, runs
from ml_batch.errors import first_line, first_line_of

if TYPE_CHECKING:
    from ml_batch.run.completeness import DayCheck

logger = logging.getLogger(__name__)

ERROR_CHARS = 4000

#: What started a run: `tables.RUN_TYPES`, next to the CHECK constraint that enforces it (migration 0010).
RUN_TYPES = tables.RUN_TYPES
#: Airflow's DagRunType values as ml-batch's run types (anything else Airflow adds later counts as manual).
AIRFLOW_RUN_TYPES = {"scheduled": "scheduled", "manual": "manual", "operator_triggered": "manual",
                     "backfill": "backfill", "asset_triggered": "asset_triggered",
                     "asset_materialization": "asset_triggered", "test": "test"}

#: A run's status: `tables.RUN_STATUSES`, next to the CHECK constraint that enforces it.
STATUSES = tables.RUN_STATUSES
RUNNING, SUCCESS, FAILED, DRY_RUN = STATUSES
#: The run's work is done and recorded (nothing of it is left to publish or to clean up): a failure reported
#: afterwards (a retried publish whose commit had gone through, a step after it) must not turn it `failed`.
FINISHED = (SUCCESS, DRY_RUN)
#: The run's process is over one way or the other.
ENDED = (*FINISHED, FAILED)


def run_type_of(airflow_run_type: str | None) -> str:
    """Airflow's DagRunType value (e.g. 'scheduled', 'backfill', or the enum's text) as ml-batch's run type."""
    value = (airflow_run_type or "manual").lower().rsplit(".", 1)[-1]
    return AIRFLOW_RUN_TYPES.get(value, "manual")


def check_run_type(run_type: str) -> str:
    """`run_type` when it is one of RUN_TYPES; ValueError naming the valid ones otherwise."""
    if run_type not in RUN_TYPES:
        raise ValueError(f"run_type {run_type!r}: expected one of {RUN_TYPES}")
    return run_type


@dataclass(frozen=True)
class PlannedState:
    """What a plan found about its day as a whole: the completeness checks and the state of the source it read
    (`ml_batch.run.digest`), recorded on the run for `runs` and reconcile."""

    check: DayCheck
    key_digest: str | None = None
    source_updated_at: dt.datetime | None = None


def start(conn: sa.Connection, *, model: str, run_id: str, day: dt.date, run_type: str, dry_run: bool,
          version: int, sha256: str, shards: int, spec_sha256: str, state: PlannedState | None = None) -> None:
    """Insert (or reset, on a retried plan) the run's row with status `running`, the spec it pinned and what
    its plan found about the day."""
    values = {
        "model_name": model, "run_id": run_id, "partition_date": day, "run_type": check_run_type(run_type),
        "dry_run": dry_run, "status": RUNNING, "model_version": version, "artifact_sha256": sha256,
        "shards": shards, "spec_sha256": spec_sha256,
        "partial": bool(state and state.check.partial),
        "day_check": state.check.as_dict() if state is not None else {},
        "key_digest": state.key_digest if state is not None else None,
        "source_updated_at": state.source_updated_at if state is not None else None,
        "rows_extracted": None, "rows_scored": None, "rows_quarantined": None, "score_mean": None,
        "stage_seconds": {}, "error": None, "finished_at": None, "data_failed_at": None, "scoring_path": None,
    }
    stmt = insert(runs).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[runs.c.model_name, runs.c.run_id],
        set_={k: stmt.excluded[k] for k in values if k not in ("model_name", "run_id")} | {"started_at": sa.func.now()},
    ))
    conn.execute(run_shards.delete().where(run_shards.c.model_name == model, run_shards.c.run_id == run_id))


def record_shard(conn: sa.Connection, *, model: str, run_id: str, shard: int, extracted: int, scored: int,
                 quarantined: int, score_sum: float, stage_seconds: dict[str, float]) -> None:
    """Upsert one shard's counts (a retried shard replaces its earlier row)."""
    values = {"model_name": model, "run_id": run_id, "shard": shard, "rows_extracted": extracted,
              "rows_scored": scored, "rows_quarantined": quarantined, "score_sum": score_sum,
              "stage_seconds": stage_seconds}
    stmt = insert(run_shards).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[run_shards.c.model_name, run_shards.c.run_id, run_shards.c.shard],
        set_={k: stmt.excluded[k] for k in ("rows_extracted", "rows_scored", "rows_quarantined", "score_sum",
                                             "stage_seconds")} | {"finished_at": sa.func.now()},
    ))


def record_scoring_path(conn: sa.Connection, *, model: str, run_id: str, path: str) -> None:
    """Record the path (`tables.SCORING_PATHS`) a shard scores the run with. Shards on machines that differ
    may score it differently: once any shard used scikit-learn, the run says `sklearn` (not every row of it was
    scored by the compiled library)."""
    if path not in tables.SCORING_PATHS:
        raise ValueError(f"scoring path {path!r}: expected one of {tables.SCORING_PATHS}")
    conn.execute(
        runs.update().where(runs.c.model_name == model, runs.c.run_id == run_id)
        .values(scoring_path=sa.case((runs.c.scoring_path == "sklearn", "sklearn"), else_=path))
    )


def shard_totals(conn: sa.Connection, model: str, run_id: str) -> dict[str, Any]:
    """Sums over the run's finished shards, and how many there are."""
    row = conn.execute(
        sa.select(
            sa.func.count().label("shards_done"),
            sa.func.coalesce(sa.func.sum(run_shards.c.rows_extracted), 0).label("extracted"),
            sa.func.coalesce(sa.func.sum(run_shards.c.rows_scored), 0).label("scored"),
            sa.func.coalesce(sa.func.sum(run_shards.c.rows_quarantined), 0).label("quarantined"),
            sa.func.coalesce(sa.func.sum(run_shards.c.score_sum), 0.0).label("score_sum"),
        ).where(run_shards.c.model_name == model, run_shards.c.run_id == run_id)
    ).mappings().one()
    stages = conn.execute(
        sa.select(run_shards.c.stage_seconds).where(run_shards.c.model_name == model, run_shards.c.run_id == run_id)
    ).scalars().all()
    merged: dict[str, float] = {}
    for stage in stages:
        for key, seconds in stage.items():
            merged[key] = round(merged.get(key, 0.0) + float(seconds), 3)
    # SUM(bigint) comes back as numeric (Decimal): hand out plain ints.
    counts = {k: (float(v) if k == "score_sum" else int(v)) for k, v in row.items()}
    return {**counts, "stage_seconds": merged}


def finish(conn: sa.Connection, *, model: str, run_id: str, status: str, extracted: int, scored: int,
           quarantined: int, score_mean: float | None, stage_seconds: dict[str, float]) -> None:
    """Record the finished run (its `error`, if an earlier attempt failed, stays: see the module doc)."""
    conn.execute(
        runs.update()
        .where(runs.c.model_name == model, runs.c.run_id == run_id)
        .values(status=status, rows_extracted=extracted, rows_scored=scored, rows_quarantined=quarantined,
                score_mean=score_mean, stage_seconds=stage_seconds, finished_at=sa.func.now())
    )


def fail(engine: sa.Engine, *, model: str, run_id: str, error: str) -> bool:
    """Mark a run failed with its one-line reason (in its own transaction: the failed one rolled back). Only the
    first line of `error` is kept (`errors.summary` makes one, without a batch failure's failing values: the
    analyst role and the UI's viewers read `runs.error` and may not see the source's values; the log keeps
    them): a traceback belongs in the log.

    The first error stays first; a later one is appended. A run already finished (`success`, `dry_run`)
    keeps its status. Never raises: when the database cannot record the failure (it is gone, which is
    often the failure itself), that is logged and False returned, so the caller's error is the one reported.
    """
    first = sa.bindparam("error", (first_line_of(error) or error)[:ERROR_CHARS], type_=sa.Text)
    try:
        with engine.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.model_name == model, runs.c.run_id == run_id, runs.c.status.not_in(FINISHED))
                .values(status=FAILED, finished_at=sa.func.now(), error=sa.case(
                    (runs.c.error.is_(None), first),
                    else_=sa.func.left(runs.c.error + " | then: " + first, ERROR_CHARS),
                ))
            )
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("could not record the failure of run %s of %s (%s): %s", run_id, model, error,
                       first_line(exc))
        return False
    return True


def get(conn: sa.Connection, model: str, run_id: str) -> dict[str, Any] | None:
    """The run's row, or None."""
    row = conn.execute(sa.select(runs).where(runs.c.model_name == model, runs.c.run_id == run_id)).mappings().first()
    return dict(row) if row is not None else None


def list_runs(engine: sa.Engine, model: str, limit: int = 30) -> list[dict[str, Any]]:
    """The newest runs of a model (by partition date, then start time)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs).where(runs.c.model_name == model)
            .order_by(runs.c.partition_date.desc(), runs.c.started_at.desc()).limit(limit)
        ).mappings().all()
    return [dict(row) for row in rows]


def latest_per_day(engine: sa.Engine, model: str, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """The most recent finished run of each day in [first, last], oldest day first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs)
            .where(runs.c.model_name == model, runs.c.partition_date.between(first, last),
                   runs.c.status.in_(ENDED))
            .order_by(runs.c.partition_date, runs.c.started_at.desc())
            .ext(distinct_on(runs.c.partition_date))
        ).mappings().all()
    return [dict(row) for row in rows]

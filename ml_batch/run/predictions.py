"""The published predictions table: created once per model, and one day of it replaced atomically.

A model's predictions table (of a multiclass model: with a text `predicted_label` and every class's
probability in `class_scores`) is partitioned by day (`<table>_pYYYYMMDD`), with an index on (key, day) and a
`<table>_latest` view. Publishing a day, in the caller's transaction and under a per-(table, day) advisory
lock, detaches and drops the day's old partition (if any) and renames and attaches the run's staging table
as the new one. Readers see the old day or the new day, never a mix or a gap; re-running a day replaces it,
so there is always exactly one copy. Attaching is instant (a CHECK constraint proves the bound, so PostgreSQL
skips its scan, and the indexes exist, so it builds none) and the rows are never copied a second time.

Detaching needs an ACCESS EXCLUSIVE lock on the predictions table, and while a publish waits for it every new
reader of any day queues behind it. So the swap waits at most `SwapLocking.timeout_s`, gives way (rolls back
to a savepoint: the staged and audited rows stay in the transaction) and tries again after a growing pause
(`ml_batch.db.locks.with_short_locks`); after `attempts` tries it fails with `PublishBlocked` naming who
holds the lock, and the run's staging table stays for a retry. (`DETACH PARTITION ... CONCURRENTLY` would
not queue readers, but it cannot run in a transaction block: the day would be missing between its two
transactions.)
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ml_batch.db import locks
from ml_batch.db.catalog import table_exists
from ml_batch.db.sources import source_key_type
from ml_batch.db.sqlfiles import render, render_regclass
from ml_batch.db.tables import published_days
from ml_batch.errors import PublishBlocked
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

# The predictions table of a task whose rows differ from a binary or regression model's: a multiclass model's
# predicted_label is a class name and its rows carry every class's probability (`class_scores`).
_PREDICTIONS_DDL = {"multiclass": "create_multiclass_predictions_table"}


def ensure_predictions_table(conn: sa.Connection, spec: Spec) -> None:
    """Create the model's partitioned predictions table, its index and `_latest` view if missing."""
    predictions = spec.predictions
    # Once they exist, no DDL: CREATE OR REPLACE VIEW would take an exclusive lock on the view and queue its
    # readers behind any long query on it.
    if all(table_exists(conn, name) for name in (predictions.table, predictions.key_index, predictions.latest_view)):
        return
    locks.xact_lock(conn, locks.key("ddl", predictions.table))  # the table itself: whichever ml-batch schema
    if predictions.schema_name:
        conn.execute(sa.schema.CreateSchema(predictions.schema_name, if_not_exists=True))
    key = spec.source.key
    conn.execute(render(_PREDICTIONS_DDL.get(spec.model.task, "create_predictions_table"), table=predictions.table,
                        key=key, key_type=source_key_type(conn, spec)))
    conn.execute(render("create_predictions_key_index", table=predictions.table, key=key,
                        index=predictions.key_index.rpartition(".")[2]))
    conn.execute(render("create_predictions_latest_view", table=predictions.table, key=key,
                        view=predictions.latest_view))


def lock_day(conn: sa.Connection, spec: Spec, day: dt.date) -> None:
    """The transaction's lock on day `day` of the predictions table: one publish (or prune) of a day at a time."""
    locks.xact_lock(conn, locks.key("publish", spec.predictions.table, day.isoformat()))


def swap_in(conn: sa.Connection, spec: Spec, staging: str, day: dt.date, locking: locks.SwapLocking) -> None:
    """Replace day `day` of the predictions table by the staging table (caller holds the transaction).

    The statements that lock the predictions table run under `locking` (`with_short_locks`); when the lock
    is not granted after `locking.attempts` tries, PublishBlocked.
    """
    lock_day(conn, spec, day)
    bounds = {"day": day, "next_day": day + dt.timedelta(days=1)}
    constraint = f"{spec.predictions.table_name}_day_check"
    conn.execute(render("constrain_staging_to_day", dates=bounds, staging=staging, constraint=constraint))
    partition = spec.predictions.partition(day)

    def blocked(attempts: int, waited: float) -> Exception:
        return PublishBlocked(
            f"could not lock {spec.predictions.table} to publish day {day} after {attempts} attempts "
            f"over {waited:.1f} s (lock_timeout {locking.timeout_s:g} s each, so "
            f"readers never queue behind the publish for longer): {_lock_holders(conn, spec, partition)}; "
            "nothing was published and the run's staging table is kept: retry the publish"
        )

    locks.with_short_locks(conn, locking, lambda: _swap(conn, spec, staging, partition, bounds),
                           what=f"publish of {spec.predictions.table} day {day}", exhausted=blocked)
    conn.execute(render("drop_staging_constraint", partition=partition, constraint=constraint))
    logger.info("published %s day %s as partition %s", spec.predictions.table, day, partition)


def drop_partition(conn: sa.Connection, spec: Spec, day: dt.date, locking: locks.SwapLocking) -> None:
    """Detach and drop day `day` (retention) under the day's lock and `locking`, and forget it was published."""
    lock_day(conn, spec, day)  # a publish of the same day waits for the prune, or the reverse
    partition = spec.predictions.partition(day)

    def drop() -> None:
        if table_exists(conn, partition):
            conn.execute(render("detach_partition", table=spec.predictions.table, partition=partition))
            conn.execute(render("drop_table", table=partition))

    locks.with_short_locks(conn, locking, drop, what=f"prune of {spec.predictions.table} day {day}")
    conn.execute(published_days.delete().where(published_days.c.model_name == spec.name,
                                               published_days.c.partition_date == day))


def _swap(conn: sa.Connection, spec: Spec, staging: str, partition: str, bounds: dict[str, dt.date]) -> None:
    """Detach and drop the day's old partition (if any), rename the staging table and attach it."""
    if table_exists(conn, partition):
        conn.execute(render("detach_partition", table=spec.predictions.table, partition=partition))
        conn.execute(render("drop_table", table=partition))
    conn.execute(render("rename_staging_to_partition", staging=staging, partition_name=partition.rpartition(".")[2]))
    conn.execute(render("attach_partition", dates=bounds, table=spec.predictions.table, partition=partition))


def _lock_holders(conn: sa.Connection, spec: Spec, partition: str) -> str:
    """Who holds a lock on the predictions table or the day's partition, for the PublishBlocked message."""
    rows = conn.execute(render("select_lock_holders"), {
        "table": render_regclass(spec.predictions.table), "partition": render_regclass(partition),
    }).mappings().all()
    if not rows:
        return "the lock holder has ended since"
    held = [f"pid {r['pid']} ({r['mode']}, {r['state']}, for {r['seconds']} s: {r['query']})" for r in rows[:3]]
    return "it is held by " + "; ".join(held) + (f" and {len(rows) - 3} more" if len(rows) > 3 else "")


def record_publication(conn: sa.Connection, spec: Spec, *, day: dt.date, run_id: str, version: int) -> None:
    """In the publishing transaction: `run_id` is the day's published run (`published_days`)."""
    values = {"model_name": spec.name, "partition_date": day, "run_id": run_id, "model_version": version,
              "published_at": sa.func.now()}
    stmt = insert(published_days).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[published_days.c.model_name, published_days.c.partition_date],
        set_={k: stmt.excluded[k] for k in ("run_id", "model_version", "published_at")},
    ))


def published_run(conn: sa.Connection, model: str, day: dt.date) -> str | None:
    """The run whose predictions day `day` holds (None: never published)."""
    return conn.execute(sa.select(published_days.c.run_id).where(
        published_days.c.model_name == model, published_days.c.partition_date == day)).scalar_one_or_none()

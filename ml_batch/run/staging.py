"""Write-audit-publish of a day's predictions.

- **Write**: shards COPY their predictions into the run's staging table: only (key, score, label), the
  columns that differ from row to row. Publishing stamps the columns every row of the run shares (day,
  model, version, artifact hash, run id, scored_at) as PostgreSQL fast defaults, which cost no write per
  row, and adds the primary key (partition_date, key): the table is then shaped like one partition.
- **Audit**: the staging table must hold exactly the scored row count, no duplicate key, no null, NaN or
  infinite score (nor, for a binary model, one outside [0, 1]), only day D and only the pinned version.
  Then it gets every index of the predictions table and its planner statistics, before any lock on the
  predictions table is asked for.
- **Publish**: in the same transaction, under a per-(model, day) advisory lock, the day's old partition (if
  any) is detached and dropped and the staging table is renamed and attached as the new partition. Readers
  see the old day or the new day, never a mix or a gap; re-running a day replaces it, so there is always
  exactly one copy. Attaching is instant (a CHECK constraint proves the bound, so PostgreSQL skips its scan,
  and the indexes exist, so it builds none) and the rows are never copied a second time.
- **Locks**: detaching needs an ACCESS EXCLUSIVE lock on the predictions table, and while a publish waits for
  it every new reader of any day queues behind it. So the swap waits at most `SwapLocking.timeout_s`, gives
  way (rolls back to a savepoint: the staged and audited rows stay in the transaction) and tries again after
  a growing pause; after `attempts` tries it fails with `PublishBlocked` naming who holds the lock, and the
  run's staging table stays for a retry. (`DETACH PARTITION ... CONCURRENTLY` would not queue readers, but
  it cannot run in a transaction block: the day would be missing between its two transactions.)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ml_batch.db.disconnects import is_lock_not_available
from ml_batch.db.sources import selectable
from ml_batch.db.sqlfiles import render, render_regclass
from ml_batch.db.tables import published_days, quarantine, runs
from ml_batch.errors import PublishBlocked, PublishError
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

# PostgreSQL's SQLSTATE for `lock_timeout` expiring (lock_not_available).


@dataclass(frozen=True)
class SwapLocking:
    """How the swap waits for the predictions table's exclusive lock without queueing readers for long.

    Each attempt waits at most `timeout_s` (the longest a new reader can queue behind it), then gives way;
    the pause before the next attempt starts at `backoff_s` and doubles up to `max_backoff_s`. The defaults
    wait out a query holding the table for about half a minute.
    """

    timeout_s: float = 0.2
    attempts: int = 10
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"{self!r}: expected attempts >= 1, timeout_s > 0 and non-negative pauses")

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))


DEFAULT_LOCKING = SwapLocking()


def partition_name(spec: Spec, day: dt.date) -> str:
    return f"{spec.predictions.table_name}_p{day:%Y%m%d}"


def qualified(spec: Spec, name: str) -> str:
    schema = spec.predictions.schema_name
    return f"{schema}.{name}" if schema else name


def staging_table(spec: Spec, run_id: str) -> str:
    """The run's staging table (schema-qualified); a hash keeps any run id a valid, short identifier."""
    digest = hashlib.sha1(f"{spec.name}/{run_id}".encode()).hexdigest()[:10]
    return qualified(spec, f"{spec.predictions.table_name}__s_{digest}")


def source_key_type(conn: sa.Connection, spec: Spec) -> str:
    """PostgreSQL's own name of the source key's type (e.g. `bigint`), for the predictions table."""
    src = selectable(spec.source, [spec.source.key], "src")
    stmt = sa.select(src.c[spec.source.key]).limit(0)
    cursor = conn.exec_driver_sql(str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
    type_oid = cursor.cursor.description[0][1]
    cursor.close()
    return str(conn.execute(sa.text("SELECT format_type(:oid, NULL)"), {"oid": type_oid}).scalar_one())


def table_exists(conn: sa.Connection, name: str) -> bool:
    """Whether the table (or index, or view) `name` exists, without taking a lock on it."""
    return bool(conn.execute(render("select_table_exists"), {"table": render_regclass(name)}).scalar_one())


def ensure_predictions_table(conn: sa.Connection, spec: Spec) -> None:
    """Create the model's partitioned predictions table, its index and `_latest` view if missing."""
    table = spec.predictions.table
    index = f"{spec.predictions.table_name}_key_idx"
    view = qualified(spec, f"{spec.predictions.table_name}_latest")
    # Once they exist, no DDL: CREATE OR REPLACE VIEW would take an exclusive lock on the view and queue its
    # readers behind any long query on it.
    if all(table_exists(conn, name) for name in (table, qualified(spec, index), view)):
        return
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ml_batch.ddl:{table}"})
    if spec.predictions.schema_name:
        conn.execute(sa.schema.CreateSchema(spec.predictions.schema_name, if_not_exists=True))
    key_type = source_key_type(conn, spec)
    key = spec.source.key
    conn.execute(render("create_predictions_table", table=table, key=key, key_type=key_type))
    conn.execute(render("create_predictions_key_index", table=table, key=key, index=index))
    conn.execute(render("create_predictions_latest_view", table=table, key=key, view=view))


def create_staging(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """A fresh, empty staging table for a run (a leftover from an earlier attempt is dropped)."""
    conn.execute(render("drop_table", table=staging))
    # the key's type as the predictions table has it (ATTACH PARTITION needs the same type)
    key_type = conn.execute(render("select_column_type"), {
        "table": render_regclass(spec.predictions.table), "column": spec.source.key,
    }).scalar_one_or_none()
    if key_type is None:
        raise PublishError(f"{spec.predictions.table} has no column {spec.source.key!r}: it was not created by "
                           "ml-batch for this spec (or the spec's key changed); rename or drop it")
    conn.execute(render("create_staging_table", staging=staging, key=spec.source.key, key_type=key_type))


def stamp_staging(conn: sa.Connection, staging: str, *, day: dt.date, model: str, version: int,
                  artifact_sha256: str, run_id: str) -> None:
    """Add the run's shared columns to the staged rows (catalog-only: no row is rewritten)."""
    conn.execute(render("set_stamp_values"), {"model_name": model, "model_version": str(version),
                                              "artifact_sha256": artifact_sha256, "run_id": run_id})
    conn.execute(render("stamp_staging", staging=staging, dates={"day": day}))
    conn.execute(render("unstamp_staging_defaults", staging=staging))


def drop_staging(conn: sa.Connection, staging: str) -> None:
    conn.execute(render("drop_table", table=staging))


def discard_staging(engine: sa.Engine, staging: str) -> None:
    """Drop a staging table no retry can publish (it failed a deterministic check); a failure to drop it is
    logged, never raised: it must not hide the error being reported (a later plan of the run replaces it)."""
    try:
        with engine.begin() as conn:
            drop_staging(conn, staging)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("could not drop staging table %s: %s", staging, str(exc).strip().splitlines()[0])


@dataclass(frozen=True)
class StagingAudit:
    row_count: int
    bad_scores: int
    positive_infinite: int
    negative_infinite: int
    outside_unit: int
    wrong_day: int
    wrong_version: int
    score_mean: float | None


def audit_staging(conn: sa.Connection, spec: Spec, staging: str, *, day: dt.date, version: int,
                  expected_rows: int) -> StagingAudit:
    """Check the staging table before publishing; any violation raises PublishError naming it."""
    try:
        with conn.begin_nested():
            conn.execute(render("add_staging_primary_key", staging=staging, key=spec.source.key))
    except sa.exc.IntegrityError as exc:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: duplicate keys "
                           f"({str(exc.orig).strip().splitlines()[-1]}); nothing was published") from exc
    row = conn.execute(render("check_staging", staging=staging), {"day": day, "version": version}).mappings().one()
    audit = StagingAudit(
        row_count=int(row["row_count"]), bad_scores=int(row["bad_scores"]),
        positive_infinite=int(row["positive_infinite"]), negative_infinite=int(row["negative_infinite"]),
        outside_unit=int(row["outside_unit"]), wrong_day=int(row["wrong_day"]),
        wrong_version=int(row["wrong_version"]),
        score_mean=float(row["score_mean"]) if row["score_mean"] is not None else None,
    )
    problems = []
    if audit.row_count != expected_rows:
        problems.append(f"{audit.row_count} rows staged, expected {expected_rows} scored rows")
    if audit.bad_scores:
        problems.append(f"{audit.bad_scores} null or NaN scores")
    if audit.positive_infinite or audit.negative_infinite:
        problems.append(f"{audit.positive_infinite + audit.negative_infinite} infinite scores "
                        f"({audit.positive_infinite} +Infinity, {audit.negative_infinite} -Infinity)")
    if spec.model.task == "binary" and audit.outside_unit:
        problems.append(f"{audit.outside_unit} scores outside [0, 1] for a binary model")
    if audit.wrong_day:
        problems.append(f"{audit.wrong_day} rows of another day than {day}")
    if audit.wrong_version:
        problems.append(f"{audit.wrong_version} rows of another version than {version}")
    if problems:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: {'; '.join(problems)}; "
                           "nothing was published")
    return audit


def index_and_analyze_staging(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """Give the (stamped, audited) staging table the predictions table's key index and planner statistics.

    With its primary key from the audit it then has every index of the parent, so ATTACH PARTITION adopts
    them instead of building one under the table's exclusive lock; and ANALYZE runs here, not after the
    swap, so nothing is left to fail once the day is published (statistics stay with the table).
    """
    conn.execute(render("create_staging_key_index", staging=staging, key=spec.source.key))
    conn.execute(render("analyze_table", table=staging))


def swap_in(conn: sa.Connection, spec: Spec, staging: str, day: dt.date, locking: SwapLocking) -> None:
    """Replace day `day` of the predictions table by the staging table (caller holds the transaction).

    The statements that lock the predictions table run under `locking` (`with_short_locks`); when the lock
    is not granted after `locking.attempts` tries, PublishBlocked.
    """
    lock_day(conn, spec, day)
    bounds = {"day": day, "next_day": day + dt.timedelta(days=1)}
    constraint = f"{spec.predictions.table_name}_day_check"
    conn.execute(render("constrain_staging_to_day", dates=bounds, staging=staging, constraint=constraint))
    partition = qualified(spec, partition_name(spec, day))

    def blocked(attempts: int, waited: float) -> Exception:
        return PublishBlocked(
            f"could not lock {spec.predictions.table} to publish day {day} after {attempts} attempts "
            f"over {waited:.1f} s (lock_timeout {locking.timeout_s:g} s each, so "
            f"readers never queue behind the publish for longer): {_lock_holders(conn, spec, partition)}; "
            "nothing was published and the run's staging table is kept: retry the publish"
        )

    with_short_locks(conn, locking, lambda: _swap(conn, spec, staging, partition, bounds),
                     what=f"publish of {spec.predictions.table} day {day}", exhausted=blocked)
    conn.execute(render("drop_staging_constraint", partition=partition, constraint=constraint))
    logger.info("published %s day %s as partition %s", spec.predictions.table, day, partition)


def lock_day(conn: sa.Connection, spec: Spec, day: dt.date) -> None:
    """The transaction's lock on day `day` of the predictions table: one publish (or prune) of a day at a time."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                 {"k": f"ml_batch.publish:{spec.predictions.table}:{day.isoformat()}"})


def with_short_locks(conn: sa.Connection, locking: SwapLocking, work: Callable[[], None], *, what: str,
                     exhausted: Callable[[int, float], Exception] | None = None) -> None:
    """Run `work` (statements that lock the predictions table) in a savepoint under `locking.timeout_s`.

    When a lock is not granted in time the savepoint is rolled back, which releases the queue of readers behind
    it, and `work` is tried again after a pause, `locking.attempts` times in all. Then the error `exhausted`
    makes from (attempts, seconds waited) is raised from the last lock error (that error itself without it).
    """
    previous_timeout = str(conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one())
    waited_since = time.monotonic()
    for attempt in range(1, locking.attempts + 1):
        try:
            with conn.begin_nested():
                conn.execute(render("set_lock_timeout"), {"timeout": f"{max(1, round(locking.timeout_s * 1000))}ms"})
                work()
                conn.execute(render("set_lock_timeout"), {"timeout": previous_timeout})
            return
        except sa.exc.OperationalError as exc:
            if not is_lock_not_available(exc):
                raise
            if attempt == locking.attempts:
                if exhausted is None:
                    raise
                raise exhausted(attempt, time.monotonic() - waited_since) from exc
            logger.info("%s: lock not granted in %.2f s (attempt %d of %d), retrying in %.2f s", what,
                        locking.timeout_s, attempt, locking.attempts, locking.pause(attempt))
            time.sleep(locking.pause(attempt))


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
    """In the publishing transaction: `run_id` is the day's published run, and the quarantine rows of the
    day's other runs that can no longer publish go (the runs whose staging table is gone).

    A run whose staging table exists is still scoring, or failed transiently and may be retried: its rows
    stay, so whichever run publishes last finds its own quarantine complete.
    """
    values = {"model_name": spec.name, "partition_date": day, "run_id": run_id, "model_version": version,
              "published_at": sa.func.now()}
    stmt = insert(published_days).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[published_days.c.model_name, published_days.c.partition_date],
        set_={k: stmt.excluded[k] for k in ("run_id", "model_version", "published_at")},
    ))
    others = conn.execute(sa.select(runs.c.run_id).where(
        runs.c.model_name == spec.name, runs.c.partition_date == day, runs.c.run_id != run_id)).scalars()
    live = [other for other in others if table_exists(conn, staging_table(spec, other))]
    conn.execute(quarantine.delete().where(
        quarantine.c.model_name == spec.name, quarantine.c.partition_date == day,
        quarantine.c.run_id.not_in([run_id, *live]),
    ))


def published_run(conn: sa.Connection, model: str, day: dt.date) -> str | None:
    """The run whose predictions day `day` holds (None: never published)."""
    return conn.execute(sa.select(published_days.c.run_id).where(
        published_days.c.model_name == model, published_days.c.partition_date == day)).scalar_one_or_none()

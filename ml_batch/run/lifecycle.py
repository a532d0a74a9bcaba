"""Run liveness, and the cleanup of runs whose process died.

A run is worked on by one process (`ml-batch score`: plan, shards and publish in `ml_batch.run.day.score_day`) or
by several (the daily DAG: plan, mapped shards and publish are Airflow tasks, possibly on different
machines, with gaps between them). Nothing in a killed process (SIGKILL, OOM, a lost machine) runs a
failure handler, so liveness is read from the database instead:

- **The lease.** Each step that works on a run holds a PostgreSQL *session* advisory lock on the run,
  shared (parallel shards hold it together), on a connection of its own (`RunLease`). The server releases
  it when the session ends, whatever ends it: a killed process's socket is closed by its kernel at once,
  and TCP keepalives (set on that session) end it within about two minutes when a machine vanishes.
  The lease also records `heartbeat_at` (when a step started and ended) and `holder` (host:pid).
- **The rule.** A `running` or `failed` run that was not yet cleaned up is **dead** when nobody holds its
  lock *and* either it ran in one process (`single_process`, set by `score_day`: the lock was held from
  before the plan until the end, so a free lock means the process is gone), or a step of it failed on its
  data (`data_failed_at`, below: no later task of this plan can publish, so there is nothing to wait for),
  or its last activity (the latest of `started_at`, `heartbeat_at` and its shards' `finished_at`) is older
  than the staleness window (`stale_after`, default DEFAULT_STALE_AFTER). The window only matters for
  multi-process runs: between two tasks nobody holds the lock, and the next task (or Airflow's retry of a
  killed one) may still come. It must exceed the longest gap expected between two tasks of one run, retries
  included. A task of a run failed on its data that still comes (a queued shard, a cleared task) is refused
  with RunAbandoned naming what to do, as it would be once the failing step dropped the objects itself;
  only a new plan of the run (a retried or cleared plan task) can publish the day.
- **The cleanup** (`cleanup_dead_runs`, called first by every plan of the model and by
  `ml-batch runs cleanup`) takes the run's lock *exclusively* by the try-lock protocol of
  `ml_batch.db.locks.when_free` (it never waits, and a lease taken meanwhile waits for the cleanup to finish,
  then sees the run abandoned; an object of the run locked by someone is left for later), re-checks the
  rule on the locked row, drops the run's objects (`ml_batch.run.names.run_objects`), deletes its
  quarantine rows (a run that was `running`; a run that had failed keeps them: its error points at them)
  and marks a `running` run `failed` with `error` starting `abandoned:`. It never touches another run's
  objects, nor a published partition (a run whose rows are the published day is left as it is).

A later step of a run that was cleaned up fails with RunAbandoned instead of working on missing tables.

**A failure of the day's data ends the run at once.** A step that fails in a way no retry of the same plan
can fix (`ml_batch.errors.is_deterministic`: a batch that fails GX, a source that cannot be read, a day
outside its row bounds) records `runs.data_failed_at` while it still holds its lease, and drops the run's
staging table, day snapshot and GX views as soon as the lease is released (`RunLease` given the spec,
`discard_failed_run`), in the CLI and in Airflow alike, instead of leaving a full copy of the day for the
staleness window. When a parallel step of the run still holds its lock, the discard finds it taken and
leaves the objects to that step: every lease of a run whose `data_failed_at` is set, whether its own block
failed, succeeded or failed transiently, tries the discard once it released its lock (it reads the column
after releasing, so the last step to release sees a sibling's failure), and the last one drops them. A
lease of a run without `data_failed_at` costs one indexed read more, nothing else. The run's row and
quarantine rows stay: its error names the failure and points at them. Planning the run again clears
`data_failed_at` (`ml_batch.run.runs.start`). A transient failure (a refused connection, a lock not granted)
of a run with no data failure keeps everything: the retry of the step needs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from ml_batch.db import locks
from ml_batch.db.catalog import table_exists
from ml_batch.db.sqlfiles import render
from ml_batch.db.tables import run_shards, runs
from ml_batch.errors import RunAbandoned, first_line, is_deterministic
from ml_batch.run import quarantine
from ml_batch.run.names import RunObject, run_objects
from ml_batch.run.predictions import published_run
from ml_batch.run.runs import FAILED, FINISHED, RUNNING
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

DEFAULT_STALE_AFTER = dt.timedelta(hours=6)
ABANDONED = "abandoned"
# Server-side TCP keepalives of a lease's session: a vanished client machine releases the lock after
# about idle + interval * count seconds instead of the OS default of two hours.
_KEEPALIVES = {"tcp_keepalives_idle": "60", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6"}


@dataclass(frozen=True)
class CleanedRun:
    """One dead run the cleanup removed, and what it removed."""

    model: str
    run_id: str
    day: dt.date
    status: str  # the run's status before the cleanup: `running` (now failed) or `failed`
    reason: str
    dropped: list[str] = field(default_factory=list)
    quarantine_rows: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "run_id": self.run_id, "day": self.day.isoformat(), "status": self.status,
                "reason": self.reason, "dropped": self.dropped, "quarantine_rows": self.quarantine_rows}


class RunLease:
    """Hold run `run_id` of `model` alive for the `with` block: its shared advisory lock, on a session of
    its own, plus `heartbeat_at`/`holder` written when the block starts and ends.

    Entering raises RunAbandoned when the cleanup already removed the run. A block ended by a deterministic
    failure records `data_failed_at` on the run. With `spec`, leaving drops the run's objects once the lock is
    released (`discard_failed_run`) when this block or another step of the run failed on its data: no retry
    of this plan can publish. Leaving never raises on its own account: it must not hide the error that ends
    the block (the database may be gone).
    """

    def __init__(self, engine: sa.Engine, model: str, run_id: str, *, spec: Spec | None = None) -> None:
        if spec is not None and spec.name != model:
            raise ValueError(f"RunLease of model {model!r} got the spec of model {spec.name!r}")
        self._engine = engine
        self.model = model
        self.run_id = run_id
        self._spec = spec
        self._conn: sa.Connection | None = None

    def __enter__(self) -> RunLease:
        conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._conn = conn
        try:
            conn.execute(sa.select(*(sa.func.set_config(name, value, False) for name, value in _KEEPALIVES.items())))
            conn.execute(sa.select(sa.func.pg_advisory_lock_shared(run_lock_id(self._engine, self.model, self.run_id))))
            _refuse_if_cleaned(conn, self.model, self.run_id)
            self.touch()
        except BaseException:
            self._release()
            raise
        return self

    def touch(self, *, single_process: bool | None = None) -> None:
        """Record that this process works on the run now (and, once planned, whether it runs alone)."""
        self._record({} if single_process is None else {"single_process": single_process})

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        failed_on_data = exc is not None and is_deterministic(exc)
        try:
            # Recorded before the lock is released: the step that releases it last then reads it (below).
            self._record({"data_failed_at": _data_failed_now()} if failed_on_data else {})
        except sa.exc.SQLAlchemyError as error:
            logger.debug("could not record the end of a step of run %s: %s", self.run_id, error)
        finally:
            sibling_failed = self._release(read_data_failure=self._spec is not None and not failed_on_data)
        if self._spec is not None and (failed_on_data or sibling_failed):
            _discard_quietly(self._engine, self._spec, self.run_id, exc if failed_on_data else None)

    def _record(self, values: dict[str, Any]) -> None:
        if self._conn is None:
            raise RuntimeError("RunLease.touch outside its `with` block")
        self._conn.execute(runs.update().where(runs.c.model_name == self.model, runs.c.run_id == self.run_id)
                           .values(heartbeat_at=sa.func.now(), holder=_holder(), **values))

    def _release(self, *, read_data_failure: bool = False) -> bool:
        """Release the lock; with `read_data_failure`, then whether a step of the run failed on its data
        (read after releasing: a sibling that failed recorded it before releasing its own hold, so the last
        step to release sees it). False when that cannot be read."""
        conn, self._conn = self._conn, None
        if conn is None:
            return False
        try:
            conn.execute(sa.select(sa.func.pg_advisory_unlock_shared(run_lock_id(self._engine, self.model,
                                                                               self.run_id))))
            return read_data_failure and _failed_on_data(conn, self.model, self.run_id)
        except sa.exc.SQLAlchemyError:
            conn.invalidate()  # closing the session releases the lock too
            return False
        finally:
            conn.close()


def cleanup_dead_runs(engine: sa.Engine, spec: Spec, *, stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
                      keep: str | None = None) -> list[CleanedRun]:
    """Find the dead runs of `spec`'s model (see the module docstring for the rule) and remove what they
    left: staging table, day snapshot, GX views, quarantine rows; mark a dead `running` run failed. `keep` is a run id
    never to consider (the run being planned). Returns what was cleaned, oldest run first."""
    if stale_after < dt.timedelta(0):
        raise ValueError(f"stale_after={stale_after}: expected a duration of zero or more")
    with engine.connect() as conn:
        candidates = conn.execute(
            sa.select(runs.c.run_id).where(runs.c.model_name == spec.name, *_unfinished())
            .order_by(runs.c.started_at)
        ).scalars().all()
    cleaned = []
    for run_id in candidates:
        if run_id == keep:
            continue
        result = _clean_if_dead(engine, spec, run_id, stale_after)
        if result is not None:
            logger.warning("cleaned up dead run %s of %s (day %s): %s; dropped %s, %d quarantine rows",
                           run_id, spec.name, result.day, result.reason, ", ".join(result.dropped) or "nothing",
                           result.quarantine_rows)
            cleaned.append(result)
    return cleaned


def discard_failed_run(engine: sa.Engine, spec: Spec, run_id: str) -> list[str] | None:
    """Drop now what run `run_id` of `spec`'s model left (GX views, staging table, day snapshot) after a
    failure no retry of its plan can fix (see the module docstring).

    Takes the run's lock exclusively by `ml_batch.db.locks.when_free` (never waits). The run's row and its
    quarantine rows are left as they are; a finished run (`success`, `dry_run`) is never touched.

    Returns:
        The names dropped (empty when the run has none, or was never planned); None when a step of the run
        still holds its lock (it is alive: the last step to fail, or the cleanup of dead runs, drops them).
    """
    return locks.when_free(engine, run_lock_id(engine, spec.name, run_id),
                           lambda conn: _discard_locked(conn, spec, run_id),
                           what=f"discard of failed run {run_id} of {spec.name}")


def _discard_quietly(engine: sa.Engine, spec: Spec, run_id: str, cause: BaseException | None) -> None:
    """`discard_failed_run` from a lease's exit: logged, never raised (it must not hide `cause`, the failure
    of this step's data; None when another step of the run failed on its data)."""
    try:
        dropped = discard_failed_run(engine, spec, run_id)
    except sa.exc.SQLAlchemyError as exc:
        logger.warning("run %s of %s failed on its data but its objects could not be dropped (%s): the cleanup "
                       "of dead runs drops them", run_id, spec.name, first_line(exc))
        return
    if dropped is None:
        logger.info("run %s of %s failed on its data; another step of it holds its lock: its objects are left "
                    "to that step or to the cleanup of dead runs", run_id, spec.name)
    elif dropped:
        logger.info("run %s of %s failed on its data (%s): no retry of its plan can publish; dropped %s", run_id,
                    spec.name, "in another step" if cause is None else first_line(cause), ", ".join(dropped))


# -- internals ---------------------------------------------------------------------------------------------
def _unfinished() -> list[sa.ColumnElement[bool]]:
    """Runs that may have left objects: not published, not cleaned up since they were (re)planned."""
    return [runs.c.status.not_in(FINISHED),
            sa.or_(runs.c.cleaned_at.is_(None), runs.c.cleaned_at < runs.c.started_at)]


def run_lock_id(engine: sa.Engine, model: str, run_id: str) -> sa.ColumnElement[int]:
    """The run's advisory lock key: its rows are ml-batch's own, so the key names ml-batch's schema."""
    return locks.key("run", model, run_id, schema=locks.schema_of(engine))


def _data_failed_now() -> sa.ColumnElement[Any]:
    """`runs.data_failed_at` once a step failed on its data: the first such failure's time; a finished run's is
    left as it is (a step refused after the run was published failed on nothing of its data)."""
    return sa.case((runs.c.status.in_(FINISHED), runs.c.data_failed_at),
                   else_=sa.func.coalesce(runs.c.data_failed_at, sa.func.now()))


def _failed_on_data(conn: sa.Connection, model: str, run_id: str) -> bool:
    """Whether a step of the run failed on its data since it was planned (one indexed read)."""
    return conn.execute(
        sa.select(runs.c.data_failed_at.is_not(None))
        .where(runs.c.model_name == model, runs.c.run_id == run_id, runs.c.status.not_in(FINISHED))
    ).scalar_one_or_none() is True


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _refuse_if_cleaned(conn: sa.Connection, model: str, run_id: str) -> None:
    row = conn.execute(
        sa.select(runs.c.error, runs.c.cleaned_at)
        .where(runs.c.model_name == model, runs.c.run_id == run_id, runs.c.cleaned_at >= runs.c.started_at)
    ).one_or_none()
    if row is not None:
        raise RunAbandoned(
            f"run {run_id!r} of model {model!r} was abandoned and cleaned up at {row.cleaned_at:%Y-%m-%d %H:%M:%S %Z} "
            f"({row.error or 'no process held it'}): its staging table is gone; start the run again from its plan"
        )


def _clean_if_dead(engine: sa.Engine, spec: Spec, run_id: str, stale_after: dt.timedelta) -> CleanedRun | None:
    """Clean one run if it is dead, under its exclusive lock; None when it is alive or busy."""
    return locks.when_free(engine, run_lock_id(engine, spec.name, run_id),
                           lambda conn: _clean_locked(conn, spec, run_id, stale_after),
                           what=f"cleanup of run {run_id} of {spec.name}")


def _clean_locked(conn: sa.Connection, spec: Spec, run_id: str, stale_after: dt.timedelta) -> CleanedRun | None:
    last_shard = (sa.select(sa.func.max(run_shards.c.finished_at))
                  .where(run_shards.c.model_name == runs.c.model_name, run_shards.c.run_id == runs.c.run_id)
                  .scalar_subquery())
    row = conn.execute(
        sa.select(runs.c.status, runs.c.partition_date, runs.c.shards, runs.c.single_process, runs.c.holder,
                  runs.c.data_failed_at,
                  sa.func.greatest(runs.c.started_at, runs.c.heartbeat_at, last_shard).label("last_seen"),
                  sa.func.now().label("now"))
        .where(runs.c.model_name == spec.name, runs.c.run_id == run_id, *_unfinished())
        .with_for_update(skip_locked=True)  # a transaction is updating the run: it is alive
    ).mappings().one_or_none()
    if row is None:
        return None
    reason = _why_dead(row, stale_after)
    if reason is None:
        return None
    day: dt.date = row["partition_date"]
    if published_run(conn, spec.name, day) == run_id:
        logger.warning("run %s of %s is %s but its rows are the published day %s: left as it is",
                       run_id, spec.name, row["status"], day)
        return None
    dropped = drop_objects(conn, run_objects(spec, run_id, int(row["shards"])))
    removed = quarantine.clear_run(conn, spec.name, run_id) if row["status"] == RUNNING else 0
    values: dict[str, Any] = {"cleaned_at": sa.func.now()}
    if row["status"] == RUNNING:
        values |= {"status": FAILED, "finished_at": sa.func.now(), "error": f"{ABANDONED}: {reason}"}
    conn.execute(runs.update().where(runs.c.model_name == spec.name, runs.c.run_id == run_id).values(**values))
    return CleanedRun(spec.name, run_id, day, str(row["status"]), reason, dropped, removed)


def _discard_locked(conn: sa.Connection, spec: Spec, run_id: str) -> list[str]:
    shards = conn.execute(
        sa.select(runs.c.shards)
        .where(runs.c.model_name == spec.name, runs.c.run_id == run_id, runs.c.status.not_in(FINISHED))
    ).scalar_one_or_none()
    return [] if shards is None else drop_objects(conn, run_objects(spec, run_id, int(shards)))


def _why_dead(row: Any, stale_after: dt.timedelta) -> str | None:
    """Why the (unlocked) run is dead, or None when it may be alive (see the module docstring)."""
    holder = f" on {row['holder']}" if row["holder"] else ""
    gone = "the process running it died" if row["status"] == RUNNING else "it failed and its process ended"
    if row["single_process"]:
        return f"{gone}{holder} (it ran in one process and no process holds its lock any more)"
    if row["data_failed_at"] is not None:  # no later step of this plan can publish: nothing to wait for
        return (f"a step failed on its data at {row['data_failed_at']:%Y-%m-%d %H:%M:%S %Z} and no process holds "
                "its lock (no retry of its plan can publish)")
    idle = row["now"] - row["last_seen"]
    if idle < stale_after:
        return None
    return (f"{gone} or stopped{holder}: no process holds its lock and its last step was at "
            f"{row['last_seen']:%Y-%m-%d %H:%M:%S %Z}, {_duration(idle)} before the cleanup (staleness window "
            f"{_duration(stale_after)})")


def _duration(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def drop_objects(conn: sa.Connection, objects: list[RunObject]) -> list[str]:
    """Drop the run objects that exist (in the order given: views before the snapshot they read); their names."""
    found = []
    for item in objects:
        if table_exists(conn, item.name):
            conn.execute(drop_statement(item))
            found.append(item.name)
    return found


def drop_statement(item: RunObject) -> sa.TextClause:
    """The statement that drops one run object (a snapshot with CASCADE: a killed shard's GX view reads it)."""
    if item.kind == "view":
        return render("drop_view", view=item.name)
    return render("drop_day_snapshot" if item.kind == "snapshot" else "drop_table", table=item.name)

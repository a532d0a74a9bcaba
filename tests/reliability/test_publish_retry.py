"""Issue 10 row 7: a publish that fails transiently (its backend terminated, a lock it never got) keeps the
run's staging table, so retrying the same plan publishes; the run keeps the first error; a retry of a day
this run already published changes nothing; nothing after the swap can mark a published day failed."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.locks import SwapLocking
from ml_batch.errors import PublishBlocked, PublishError, ValidationFailed
from ml_batch.run.day import score_day
from ml_batch.run.names import staging_table
from ml_batch.run.plan import RunPlan, plan_run
from ml_batch.run.publish import RunSummary, publish_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import Spec
from tests.support.toy import DAY

pytestmark = pytest.mark.integration



def _scored(engine: sa.Engine, spec: Spec, run_id: str) -> RunPlan:
    plan = plan_run(engine, spec, DAY, run_id=run_id)
    score_shard(engine, plan, 0)
    return plan


def _exists(engine: sa.Engine, table: str) -> bool:
    name = ".".join(f'"{part}"' for part in table.split("."))
    with engine.connect() as conn:
        return bool(conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"), {"t": name}).scalar_one())


def _run(engine: sa.Engine, schema: str, run_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            f'SELECT status, error, rows_scored, finished_at FROM "{schema}".runs WHERE run_id = :r'),
            {"r": run_id}).mappings().one())


def _day(engine: sa.Engine, spec: Spec) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            f"SELECT run_id, count(*), min(scored_at) FROM {spec.predictions.table} WHERE partition_date = :d "
            "GROUP BY run_id"), {"d": DAY})]


def _published(engine: sa.Engine, schema: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            f'SELECT run_id FROM "{schema}".published_days WHERE partition_date = :d'), {"d": DAY}).scalars())


def _waiting_publisher(engine: sa.Engine, holder_pid: int) -> int | None:
    """The backend waiting for a lock the test's connection holds (the publish), if any yet."""
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid))"),
            {"holder": holder_pid}).scalar_one_or_none()


def test_a_terminated_publish_is_retried_from_the_same_plan(settings: Settings, engine: sa.Engine,
                                                            toy: Spec) -> None:
    plan = _scored(engine, toy, "terminated")
    failure: list[Exception] = []

    def publish() -> None:
        try:
            publish_run(engine, plan, locking=SwapLocking(timeout_s=30, attempts=1))
        except Exception as exc:  # noqa: BLE001 - the failure under test, asserted on below
            failure.append(exc)

    with engine.connect() as holder:  # a conflicting lock: the publish waits for it inside its swap
        holder.execute(sa.text(f"LOCK TABLE {toy.predictions.table} IN ACCESS EXCLUSIVE MODE"))
        holder_pid = holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        thread = threading.Thread(target=publish)
        thread.start()
        deadline = time.monotonic() + 60
        while (victim := _waiting_publisher(engine, holder_pid)) is None:
            assert time.monotonic() < deadline and thread.is_alive(), "the publish never waited for the lock"
            time.sleep(0.02)
        with engine.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": victim}).scalar_one()
        thread.join(timeout=60)
        holder.rollback()
    assert len(failure) == 1 and isinstance(failure[0], sa.exc.OperationalError)
    first = _run(engine, settings.schema, "terminated")
    assert first["status"] == "failed"
    cause = str(first["error"])
    assert cause.startswith("OperationalError: ") and "connection" in cause, cause
    assert _exists(engine, plan.staging_table), "a transient failure keeps what the retry needs"
    assert _day(engine, toy) == [] and _published(engine, settings.schema) == []

    summary = publish_run(engine, plan)

    assert (summary.status, summary.scored) == ("success", 80)
    run = _run(engine, settings.schema, "terminated")
    assert (run["status"], run["rows_scored"]) == ("success", 80)
    assert run["error"] == cause, "the first cause is kept"
    assert [(r[0], r[1]) for r in _day(engine, toy)] == [("terminated", 80)]
    assert _published(engine, settings.schema) == ["terminated"]
    assert not _exists(engine, plan.staging_table)


def test_a_publish_blocked_past_its_lock_attempts_fails_clearly_and_its_retry_publishes(
        settings: Settings, engine: sa.Engine, toy: Spec) -> None:
    score_day(engine, toy, DAY, run_id="first")  # the day exists: republishing it must detach the old copy
    plan = _scored(engine, toy, "blocked")
    with engine.connect() as reader:  # an analyst's transaction still reading the table
        reader_pid = reader.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        reader.execute(sa.text(f"SELECT count(*) FROM {toy.predictions.table}")).scalar_one()
        started = time.monotonic()
        with pytest.raises(PublishBlocked) as blocked:
            publish_run(engine, plan, locking=SwapLocking(timeout_s=0.1, attempts=3, backoff_s=0.05))
        elapsed = time.monotonic() - started
        reader.rollback()
    message = str(blocked.value)
    assert f"could not lock {toy.predictions.table} to publish day {DAY} after 3 attempts" in message
    assert f"pid {reader_pid} (AccessShareLock, idle in transaction, for " in message, "names who holds the lock"
    assert f"SELECT count(*) FROM {toy.predictions.table}" in message
    assert elapsed < 5
    failed = _run(engine, settings.schema, "blocked")
    assert failed["status"] == "failed" and str(failed["error"]).startswith("could not lock")
    assert _exists(engine, plan.staging_table)
    assert [(r[0], r[1]) for r in _day(engine, toy)] == [("first", 80)], "the old copy stays published"
    assert _published(engine, settings.schema) == ["first"]

    summary = publish_run(engine, plan)

    assert summary.status == "success"
    run = _run(engine, settings.schema, "blocked")
    assert run["status"] == "success" and str(run["error"]).startswith("could not lock")
    assert [(r[0], r[1]) for r in _day(engine, toy)] == [("blocked", 80)]
    assert _published(engine, settings.schema) == ["blocked"]


def test_a_retry_of_a_day_this_run_published_is_a_no_op(settings: Settings, engine: sa.Engine, toy: Spec) -> None:
    plan = _scored(engine, toy, "once")
    first = publish_run(engine, plan)
    day_before, run_before = _day(engine, toy), _run(engine, settings.schema, "once")

    again = publish_run(engine, plan)  # e.g. the task's commit went through but its worker died

    assert isinstance(again, RunSummary) and again.to_xcom() == first.to_xcom()
    assert _day(engine, toy) == day_before, "same rows, same scored_at: nothing was republished"
    assert _run(engine, settings.schema, "once") == run_before
    assert run_before["status"] == "success" and run_before["error"] is None


def test_the_partition_is_analyzed_before_the_swap_commits(engine: sa.Engine, toy: Spec) -> None:
    """Statistics are gathered inside the publishing transaction: no step after the swap can fail the run."""
    plan = _scored(engine, toy, "stats")
    publish_run(engine, plan)
    partition = f"{toy.predictions.table}_p{DAY:%Y%m%d}"
    with engine.connect() as conn:
        reltuples = conn.execute(sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:p)"),
                                 {"p": partition}).scalar_one()
        stats = conn.execute(sa.text("SELECT count(*) FROM pg_statistic WHERE starelid = to_regclass(:p)"),
                             {"p": partition}).scalar_one()
    assert reltuples == 80 and stats >= 9


def test_a_deterministic_failure_drops_staging_and_keeps_the_first_error(settings: Settings, engine: sa.Engine,
                                                                         toy: Spec) -> None:
    strict = toy.model_copy(update={"validation": toy.validation.model_copy(update={"min_rows": 1000})})
    plan = _scored(engine, strict, "too-few")
    with pytest.raises(ValidationFailed, match="80 rows extracted, expected between 1000"):
        publish_run(engine, plan)
    assert not _exists(engine, plan.staging_table), "no retry of this plan can publish: its staging goes"
    with pytest.raises(PublishError, match=r"staging table .* of run 'too-few' is gone"):
        publish_run(engine, plan)
    run = _run(engine, settings.schema, "too-few")
    assert run["status"] == "failed"
    assert str(run["error"]).startswith("model 'toy' day 2026-05-21: 80 rows extracted, expected between 1000")
    assert "is gone" in str(run["error"]), "later errors are kept after the first"
    assert plan.staging_table == staging_table(strict, "too-few")


def test_a_day_replanned_under_the_same_run_id_publishes_again(engine: sa.Engine, toy: Spec) -> None:
    """What clearing a finished DAG run in Airflow does: the same run id plans, scores and publishes the day
    again while the day's partition is the one that run published (found by the e2e backfill test)."""
    first = score_day(engine, toy, DAY, run_id="cleared")
    [(_, _, first_scored_at)] = _day(engine, toy)
    again = score_day(engine, toy, DAY, run_id="cleared")
    assert (again.status, again.scored) == ("success", first.scored)
    [(run_id, n, scored_at)] = _day(engine, toy)
    assert (run_id, n) == ("cleared", first.scored) and scored_at > first_scored_at

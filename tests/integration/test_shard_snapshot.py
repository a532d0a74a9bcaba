"""Issue 11 item 3: a run reads its day from the source once, at plan time, into a per-run snapshot split by
shard; each shard validates and extracts its own piece, so a row landing mid-run is never scored unvalidated,
and the snapshot never outlives its run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.locks import SwapLocking
from ml_batch.errors import PublishBlocked, ValidationFailed
from ml_batch.run import lifecycle
from ml_batch.run import plan as planning
from ml_batch.run.day import score_day
from ml_batch.run.plan import plan_run
from ml_batch.run.publish import publish_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import Spec
from ml_batch.validation import passes
from tests.support.toy import DAY, trained_toy
from tests.support.usage import rows_read

pytestmark = pytest.mark.integration

DAY_ROWS = 80


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    return trained_toy(engine, settings.schema, rows_per_day=DAY_ROWS)


@pytest.fixture()
def day_only(engine: sa.Engine, toy: Spec) -> Spec:
    """The toy model with a source that holds day DAY only: one pass over it reads exactly the day's rows."""
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE NOT (event_time >= :s AND event_time < :e)"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f"VACUUM {toy.source.table}"))  # no dead rows for a scan to step over
    return toy


def _snapshot_tables(engine: sa.Engine, spec: Spec) -> set[str]:
    """The day snapshots' tables (parents and pieces) in the predictions schema."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            r"WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND c.relname LIKE 'ml\_batch\_day\_%'"),
            {"schema": spec.predictions.schema_name}).scalars())


def _published(engine: sa.Engine, spec: Spec) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            f"SELECT id FROM {spec.predictions.table} WHERE partition_date = :d ORDER BY id"), {"d": DAY}).scalars())


@pytest.mark.parametrize("shards", [2, 4])
def test_a_sharded_run_reads_the_days_source_rows_once(engine: sa.Engine, day_only: Spec, shards: int) -> None:
    before = rows_read(engine, day_only.source.table)
    plan = plan_run(engine, day_only, DAY, run_id=f"k{shards}", shards=shards)
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    summary = publish_run(engine, plan)
    read = rows_read(engine, day_only.source.table) - before
    assert (plan.day_rows, summary.scored) == (DAY_ROWS, DAY_ROWS)
    assert read <= 1.1 * DAY_ROWS, f"{shards} shards read {read} source rows for a day of {DAY_ROWS}"


def _insert_after_validation(monkeypatch: pytest.MonkeyPatch, engine: sa.Engine, spec: Spec,
                             row_id: int) -> list[int]:
    """Wrap GX's validation: once it has returned for the first time, INSERT a row of DAY that fails the
    suite (an unknown category) into the source, before the shard extracts."""
    inserted: list[int] = []
    real: Callable[..., Any] = passes.validate_relation

    def validate_then_insert(*args: Any, **kwargs: Any) -> Any:
        outcome = real(*args, **kwargs)
        if not inserted:
            with engine.begin() as conn:
                conn.execute(sa.text(
                    f"INSERT INTO {spec.source.table} (id, event_time, x1, x2, color) "
                    "VALUES (:id, :t, 0.1, 0.2, 'green')"),
                    {"id": row_id, "t": dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)})
            inserted.append(row_id)
        return outcome

    monkeypatch.setattr(passes, "validate_relation", validate_then_insert)
    return inserted


def test_a_row_landing_mid_run_is_not_scored_unvalidated(settings: Settings, engine: sa.Engine, toy: Spec,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_run(engine, toy, DAY, run_id="mid-run", shards=2)
    with engine.connect() as conn:  # a new key in shard 0, which is validated (and extracted) first
        row_id = int(conn.execute(sa.text(
            "SELECT min(id) FROM generate_series(100000, 100100) AS id "
            "WHERE mod(hashtext(CAST(id AS text)) & 2147483647, 2) = 0")).scalar_one())
    inserted = _insert_after_validation(monkeypatch, engine, toy, row_id)
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    summary = publish_run(engine, plan)
    assert inserted == [row_id], "the row landed while the run was scoring"
    published = _published(engine, toy)
    assert row_id not in published, "the row GX never saw was scored"
    assert (plan.day_rows, summary.extracted, summary.scored, len(published)) == (DAY_ROWS,) * 4
    with engine.connect() as conn:
        quarantined = conn.execute(sa.text(
            f'SELECT count(*) FROM "{settings.schema}".quarantine WHERE run_id = :r'), {"r": "mid-run"}).scalar_one()
    assert quarantined == 0, "the run is the day as of plan time: the later row is not in it at all"


def test_the_snapshot_is_one_piece_per_shard_and_goes_with_a_published_run(engine: sa.Engine, toy: Spec) -> None:
    plan = plan_run(engine, toy, DAY, run_id="published", shards=3)
    pieces = _snapshot_tables(engine, toy)
    assert len(pieces) == 4, f"a parent and one piece per shard: {pieces}"
    with engine.connect() as conn:
        per_piece = conn.execute(sa.text(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            r"WHERE c.relname LIKE 'ml\_batch\_day\_%' AND c.relpersistence = 'u'")).scalar_one()
    assert per_piece == 3, "each shard's piece is an UNLOGGED partition of the snapshot"
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    publish_run(engine, plan)
    assert _snapshot_tables(engine, toy) == set()


def test_the_snapshot_goes_with_a_dry_run(engine: sa.Engine, toy: Spec) -> None:
    plan = plan_run(engine, toy, DAY, run_id="dry", shards=1, dry_run=True)
    assert _snapshot_tables(engine, toy), "planned: the day is materialised"
    score_shard(engine, plan, 0)
    assert publish_run(engine, plan).status == "dry_run"
    assert _snapshot_tables(engine, toy) == set()


def test_the_snapshot_goes_with_a_failure_of_the_days_data(engine: sa.Engine, toy: Spec) -> None:
    strict = toy.model_copy(update={"validation": toy.validation.model_copy(update={"min_rows": 1000})})
    plan = plan_run(engine, strict, DAY, run_id="too-few", shards=2)
    assert _snapshot_tables(engine, strict)
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    with pytest.raises(ValidationFailed, match="80 rows extracted, expected between 1000"):
        publish_run(engine, plan)
    assert _snapshot_tables(engine, strict) == set()


def test_the_snapshot_stays_for_a_blocked_publish_and_its_retry_reads_it(engine: sa.Engine, toy: Spec) -> None:
    plan = plan_run(engine, toy, DAY, run_id="blocked", shards=2)
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    with engine.connect() as holder:
        holder.execute(sa.text(f"LOCK TABLE {toy.predictions.table} IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(PublishBlocked):
            publish_run(engine, plan, locking=SwapLocking(timeout_s=0.05, attempts=1, backoff_s=0))
        holder.rollback()
    snapshot = _snapshot_tables(engine, toy)
    assert snapshot, "a retry of the publish (or of a shard) needs the run's snapshot"
    score_shard(engine, plan, 1)  # a retried shard reads the same piece
    assert publish_run(engine, plan).scored == DAY_ROWS
    assert _snapshot_tables(engine, toy) == set()


def test_a_replanned_run_materialises_the_day_again(engine: sa.Engine, toy: Spec) -> None:
    first = plan_run(engine, toy, DAY, run_id="again", shards=2)
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE id IN (SELECT id FROM {toy.source.table} "
                             "WHERE event_time >= :s AND event_time < :e ORDER BY id LIMIT 5)"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    second = plan_run(engine, toy, DAY, run_id="again", shards=2)
    assert (first.day_rows, second.day_rows) == (DAY_ROWS, DAY_ROWS - 5)
    assert score_day(engine, toy, DAY, run_id="again", shards=2).scored == DAY_ROWS - 5


def test_the_snapshot_of_a_dead_run_is_dropped_by_the_cleanup(engine: sa.Engine, toy: Spec) -> None:
    plan_run(engine, toy, DAY, run_id="dead", run_type="scheduled", shards=2)  # its process is gone now
    assert _snapshot_tables(engine, toy)
    cleaned = lifecycle.cleanup_dead_runs(engine, toy, stale_after=dt.timedelta(0))
    assert [c.run_id for c in cleaned] == ["dead"]
    assert any(name.rpartition(".")[2].startswith("ml_batch_day_") for name in cleaned[0].dropped)
    assert _snapshot_tables(engine, toy) == set()


def test_a_day_split_by_its_row_count_is_still_read_once(engine: sa.Engine, day_only: Spec,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`scoring.shards` unset: the day is materialised and counted, then split from the snapshot."""
    monkeypatch.setattr(planning, "shard_count", lambda spec, rows: 3 if rows == DAY_ROWS else 1)
    before = rows_read(engine, day_only.source.table)
    plan = plan_run(engine, day_only, DAY, run_id="auto")
    assert (plan.shards, plan.day_rows) == (3, DAY_ROWS)
    assert len(_snapshot_tables(engine, day_only)) == 4, "a parent and 3 pieces, no unsplit copy left"
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    assert publish_run(engine, plan).scored == DAY_ROWS
    read = rows_read(engine, day_only.source.table) - before
    assert read <= 1.1 * DAY_ROWS, f"read {read} source rows for a day of {DAY_ROWS}"

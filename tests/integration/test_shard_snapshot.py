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
from ml_batch.db import arrow
from ml_batch.db.locks import SwapLocking
from ml_batch.errors import (
    FeatureSchemaMismatch,
    PublishBlocked,
    RunAbandoned,
    SourceError,
    SpecError,
    ValidationFailed,
)
from ml_batch.model import training
from ml_batch.run import lifecycle, runs
from ml_batch.run import plan as planning
from ml_batch.run.day import score_day
from ml_batch.run.names import run_objects
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


# -- issue 23 item 6: nothing of a run that failed on its day's data stays behind ---------------------------
def _run_objects_left(engine: sa.Engine, spec: Spec, run_id: str) -> list[str]:
    """The run's staging table, snapshot tables and GX views that exist."""
    with engine.connect() as conn:
        return [item.name for item in run_objects(spec, run_id, 4)
                if conn.execute(sa.select(sa.func.to_regclass(item.name))).scalar_one() is not None]


def _fail_gx(engine: sa.Engine, spec: Spec, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """10 of the day's 80 rows fail the suite: above the 5% share, the batch fails GX in its shard."""
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET color = 'green' WHERE id IN (SELECT id FROM "
                             f"{spec.source.table} WHERE event_time >= :s AND event_time < :e ORDER BY id LIMIT 10)"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    return spec


def _fail_extract(engine: sa.Engine, spec: Spec, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """The extract of the shard's piece fails as an unreadable source does (`SourceError`)."""
    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise SourceError(f"source {spec.source.table}: column \"x1\" has an unexpected type")
        yield  # a generator, like the real stream

    monkeypatch.setattr(arrow, "stream", unreadable)
    return spec


def _fail_score(engine: sa.Engine, spec: Spec, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """Scoring the shard's rows fails deterministically (the version refuses the day's features)."""
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise FeatureSchemaMismatch("model 'toy' version 1 expects x1 numeric, the day has text")

    monkeypatch.setattr(training, "predict_scores", refused)
    return spec


def _fail_publish(engine: sa.Engine, spec: Spec, monkeypatch: pytest.MonkeyPatch) -> Spec:
    """The day as a whole is outside its row bounds: publish refuses it."""
    return spec.model_copy(update={"validation": spec.validation.model_copy(update={"min_rows": 1000})})


FAILURES = {"gx": (_fail_gx, ValidationFailed, "batch failed validation"),
            "extract": (_fail_extract, SourceError, "unexpected type"),
            "score": (_fail_score, FeatureSchemaMismatch, "expects x1 numeric"),
            "publish": (_fail_publish, ValidationFailed, "80 rows extracted, expected between 1000")}


@pytest.mark.parametrize("point", list(FAILURES))
def test_nothing_of_a_cli_run_stays_after_a_failure_of_its_data(engine: sa.Engine, toy: Spec, point: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    make_fail, error, message = FAILURES[point]
    spec = make_fail(engine, toy, monkeypatch)
    with pytest.raises(error, match=message):
        score_day(engine, spec, DAY, run_id=f"bad-{point}", shards=2)
    assert _run_objects_left(engine, spec, f"bad-{point}") == []
    assert _snapshot_tables(engine, spec) == set()
    with engine.connect() as conn:
        run = runs.get(conn, spec.name, f"bad-{point}")
    assert run is not None and run["status"] == "failed", "the run's row stays, failed"
    assert message in str(run["error"]), "its error names the failure"


@pytest.mark.parametrize("point", ["gx", "extract", "score"])
def test_nothing_of_a_run_stays_after_its_shard_failed_on_the_days_data(engine: sa.Engine, toy: Spec, point: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow path: each step holds its own lease; the failing shard drops the run's objects itself."""
    make_fail, error, message = FAILURES[point]
    spec = make_fail(engine, toy, monkeypatch)
    plan = plan_run(engine, spec, DAY, run_id=f"shard-{point}", shards=2)
    assert _run_objects_left(engine, spec, plan.run_id), "planned: staging and snapshot exist"
    with pytest.raises(error, match=message):
        score_shard(engine, plan, 0)
    assert _run_objects_left(engine, spec, plan.run_id) == []
    with pytest.raises(RunAbandoned, match="is gone"):  # a later shard of the failed run is refused, named
        score_shard(engine, plan, 1)


def _reset_stream(*args: Any, **kwargs: Any) -> Any:
    """An extract whose connection is reset (a transient failure), in place of `arrow.stream`."""
    raise ConnectionResetError("connection reset by peer")
    yield  # a generator, like the real stream


def test_a_replan_refused_by_the_spec_drops_what_the_earlier_plan_left(engine: sa.Engine, toy: Spec,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The plan as failure point: a plan's own tables roll back with it; a replan of the run that fails on the
    spec drops what its earlier plan (kept for a retry after a transient failure) had left."""
    with monkeypatch.context() as patched:
        patched.setattr(arrow, "stream", _reset_stream)
        with pytest.raises(ConnectionResetError):
            score_day(engine, toy, DAY, run_id="replan", shards=2)
    assert _run_objects_left(engine, toy, "replan"), "a transient failure keeps the run for its retry"
    missing = toy.model_copy(update={"features": [*toy.features,
                                                  toy.features[0].model_copy(update={"name": "x9"})]})
    with pytest.raises(SpecError, match="x9"):
        score_day(engine, missing, DAY, run_id="replan", shards=2)
    assert _run_objects_left(engine, toy, "replan") == []


def test_a_transient_shard_failure_keeps_the_run_for_its_retry(engine: sa.Engine, toy: Spec,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_run(engine, toy, DAY, run_id="transient", shards=2)

    with monkeypatch.context() as patched:
        patched.setattr(arrow, "stream", _reset_stream)
        with pytest.raises(ConnectionResetError):
            score_shard(engine, plan, 0)
    left = _run_objects_left(engine, toy, "transient")
    assert plan.staging_table in left and len(_snapshot_tables(engine, toy)) == 3, "staging and snapshot stay"
    for shard in range(plan.shards):
        score_shard(engine, plan, shard)
    assert publish_run(engine, plan).scored == DAY_ROWS

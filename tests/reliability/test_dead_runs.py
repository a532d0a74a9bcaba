"""Issue 10 row 8: a run killed with SIGKILL (during GX, during publish) leaves nothing behind after one
rerun or one `ml-batch runs cleanup`: no staging table, no GX view, no quarantine row, and it is shown
`failed` with the reason. A live run is never touched, whatever the staleness window."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import RunAbandoned
from ml_batch.run import lifecycle
from ml_batch.run.names import snapshot_piece, staging_table
from ml_batch.run.plan import plan_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import Spec
from tests.integration.helpers import write_spec
from tests.reliability.dead_run_helpers import (
    cli,
    kill_9,
    lock_waiters,
    quarantined,
    run_objects,
    runs_of,
    start_cli,
    validation_views,
    wait_for,
)
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration

BAD_ROWS = 3


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> tuple[Spec, Settings]:
    """The toy model trained and promoted, a day with BAD_ROWS rows to quarantine, and CLI settings."""
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))  # the CLI subprocesses inherit it
    spec = trained_toy(engine, settings.schema, rows_per_day=400)
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"UPDATE {spec.source.table} SET color = 'green' WHERE id IN (SELECT id FROM {spec.source.table} "
            f"WHERE event_time >= :s AND event_time < :e ORDER BY id LIMIT {BAD_ROWS})"),
            {"s": start, "e": start + dt.timedelta(days=1)})
    cli_settings = Settings(home=settings.home, specs_dir=write_spec(spec, tmp_path / "specs"),
                            schema=settings.schema, database_url=settings.database_url, user="t")
    return spec, cli_settings


def _running(engine: sa.Engine, settings: Settings) -> str:
    """The one run of the toy model that is `running` (the killed one)."""
    running = [r for r, row in runs_of(engine, settings.schema, "toy").items() if row["status"] == "running"]
    assert len(running) == 1, running
    return running[0]


def _kill_during_gx(engine: sa.Engine, settings: Settings, tmp_path: Path) -> str:
    proc = start_cli(settings, tmp_path / "killed", "score", "--model", "toy", "--date", DAY.isoformat())
    wait_for(lambda: validation_views(engine, settings.schema), "GX validates the shard's view", proc)
    kill_9(proc)
    return _running(engine, settings)


def _kill_during_publish(engine: sa.Engine, spec: Spec, settings: Settings, tmp_path: Path) -> str:
    """Kill the run while its publish waits for the predictions table, which this test holds locked."""
    proc = start_cli(settings, tmp_path / "killed", "score", "--model", "toy", "--date", DAY.isoformat())
    wait_for(lambda: validation_views(engine, settings.schema), "the run reaches its shard", proc)
    with engine.connect() as holder:
        holder.execute(sa.text(f"LOCK TABLE {spec.predictions.table} IN ACCESS EXCLUSIVE MODE"))
        wait_for(lambda: lock_waiters(engine), "publish waits for the predictions table", proc)
        kill_9(proc)
        holder.rollback()
    return _running(engine, settings)


def _assert_dead_run_left(engine: sa.Engine, spec: Spec, settings: Settings, dead: str) -> None:
    """What a killed run leaves today (the state cleanup must remove)."""
    assert staging_table(spec, dead).rpartition(".")[2] in run_objects(engine, settings.schema)
    assert snapshot_piece(spec, dead, 0).rpartition(".")[2] in run_objects(engine, settings.schema)


def _assert_nothing_of(engine: sa.Engine, spec: Spec, settings: Settings, dead: str) -> None:
    assert run_objects(engine, settings.schema) == set(), "no staging table or GX view remains"
    assert quarantined(engine, settings.schema, dead) == 0
    row = runs_of(engine, settings.schema, "toy")[dead]
    assert row["status"] == "failed"
    assert str(row["error"]).startswith("abandoned: the process running it died"), row["error"]


@pytest.mark.parametrize("point", ["gx", "publish"])
def test_kill_9_then_one_rerun_leaves_nothing_of_the_dead_run(engine: sa.Engine, toy, tmp_path: Path,
                                                            point: str) -> None:
    spec, settings = toy
    if point == "gx":
        dead = _kill_during_gx(engine, settings, tmp_path)
    else:
        dead = _kill_during_publish(engine, spec, settings, tmp_path)
        assert quarantined(engine, settings.schema, dead) == BAD_ROWS, "the dead run had quarantined rows"
    _assert_dead_run_left(engine, spec, settings, dead)

    rerun = cli(settings, "score", "--model", "toy", "--date", DAY.isoformat(), "--json")
    assert rerun.returncode == 0, rerun.stderr

    _assert_nothing_of(engine, spec, settings, dead)
    statuses = {row["status"] for run, row in runs_of(engine, settings.schema, "toy").items() if run != dead}
    assert statuses == {"success"}
    with engine.connect() as conn:
        published = conn.execute(sa.text(f"SELECT count(*), count(DISTINCT run_id) FROM {spec.predictions.table}"
                                         )).one()
    assert tuple(published) == (400 - BAD_ROWS, 1)


def test_cleanup_command_removes_a_dead_run_and_spares_the_published_day(engine: sa.Engine, toy,
                                                                        tmp_path: Path) -> None:
    spec, settings = toy
    first = cli(settings, "score", "--model", "toy", "--date", DAY.isoformat())
    assert first.returncode == 0, first.stderr
    (published_run,) = runs_of(engine, settings.schema, "toy")
    dead = _kill_during_publish(engine, spec, settings, tmp_path)
    assert quarantined(engine, settings.schema, dead) == BAD_ROWS
    _assert_dead_run_left(engine, spec, settings, dead)

    cleaned = cli(settings, "runs", "cleanup", "--model", "toy")
    assert cleaned.returncode == 0, cleaned.stderr
    assert dead in cleaned.stdout and "abandoned" in cleaned.stdout

    _assert_nothing_of(engine, spec, settings, dead)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT count(*), min(run_id), max(run_id) FROM {spec.predictions.table}")).one()
    assert tuple(rows) == (400 - BAD_ROWS, published_run, published_run), "the published day is untouched"
    assert quarantined(engine, settings.schema, published_run) == BAD_ROWS
    again = cli(settings, "runs", "cleanup", "--model", "toy")
    assert again.returncode == 0 and "no dead runs" in again.stdout


def test_a_live_run_is_never_reaped(engine: sa.Engine, toy, tmp_path: Path) -> None:
    spec, settings = toy
    proc = start_cli(settings, tmp_path / "live", "score", "--model", "toy", "--date", DAY.isoformat())
    wait_for(lambda: validation_views(engine, settings.schema), "the run reaches its shard", proc)
    with engine.connect() as holder:
        holder.execute(sa.text(f"LOCK TABLE {spec.predictions.table} IN ACCESS EXCLUSIVE MODE"))
        wait_for(lambda: lock_waiters(engine), "publish waits for the predictions table", proc)
        live = _running(engine, settings)
        cleaned = lifecycle.cleanup_dead_runs(engine, spec, stale_after=dt.timedelta(0))
        assert cleaned == []
        assert staging_table(spec, live).rpartition(".")[2] in run_objects(engine, settings.schema)
        assert quarantined(engine, settings.schema, live) == BAD_ROWS
        holder.rollback()
    assert proc.wait(timeout=120) == 0, (tmp_path / "live" / "stderr").read_text()
    assert runs_of(engine, settings.schema, "toy")[live]["status"] == "success"


def test_a_multi_process_run_is_reaped_only_after_the_staleness_window(engine: sa.Engine, toy) -> None:
    spec, _ = toy
    plan = plan_run(engine, spec, DAY, run_id="airflow-like", run_type="scheduled")  # its process is gone now

    assert lifecycle.cleanup_dead_runs(engine, spec) == [], "within the window: its next task may come"
    assert plan.staging_table.rpartition(".")[2] in run_objects(engine, spec.predictions.schema_name or "public")

    cleaned = lifecycle.cleanup_dead_runs(engine, spec, stale_after=dt.timedelta(0))
    assert [c.run_id for c in cleaned] == ["airflow-like"]
    assert run_objects(engine, spec.predictions.schema_name or "public") == set()
    with pytest.raises(RunAbandoned, match="run 'airflow-like' of model 'toy' was abandoned"):
        score_shard(engine, plan, 0)

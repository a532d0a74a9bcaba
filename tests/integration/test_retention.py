"""Issue 13 item 5: `ml-batch prune --model M --keep-days N [--dry-run]` on a real PostgreSQL.

Four scored days D1..D4 with quarantine rows, shadow scores, drift, alerts and report files; keeping 2 days
(today = D4 + 1) prunes D1 and D2 and keeps D3 and D4. Leftovers: a dead run (its process is gone) is
cleaned, the staging table and GX view a finished run left behind and a staging table whose run row is
gone are dropped, and a live run's staging table is kept. A dry run lists the same and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.monitoring.daily import check_day_drift
from ml_batch.run import lifecycle
from ml_batch.run.day import score_day
from ml_batch.run.names import shard_view, staging_table
from ml_batch.run.plan import plan_run
from ml_batch.run.retention import prune
from tests.integration.helpers import toy_spec, write_spec
from tests.support.toy import trained_toy

pytestmark = pytest.mark.integration

DAYS = [dt.date(2026, 5, 21) + dt.timedelta(days=i) for i in range(4)]
TODAY = DAYS[-1] + dt.timedelta(days=1)
REPO = Path(__file__).resolve().parents[2]


def _state(engine: sa.Engine, settings: Settings, spec) -> dict[str, object]:
    """Everything prune may touch, as plain values."""
    s = settings.schema
    with engine.connect() as conn:
        def rows(sql: str) -> list:
            return [tuple(r) for r in conn.execute(sa.text(sql)).all()]
        return {
            "predictions": rows(f"SELECT partition_date, count(*) FROM {spec.predictions.table} GROUP BY 1 ORDER BY 1"),
            "partitions": rows("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                               f"WHERE i.inhparent = '{spec.predictions.table}'::regclass ORDER BY 1"),
            "objects": rows(f"SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                            f"nspname = '{s}' AND (relname LIKE 'toy_predictions\\_\\_s\\_%' OR relname LIKE "
                            "'ml\\_batch\\_validate\\_%' OR relname LIKE 'ml\\_batch\\_day\\_%') ORDER BY 1"),
            **{t: rows(f"SELECT partition_date, count(*) FROM {s}.{t} GROUP BY 1 ORDER BY 1")
               for t in ("quarantine", "shadow_predictions", "drift_days", "drift_results", "alerts",
                         "published_days")},
            "runs": rows(f"SELECT run_id, partition_date, status FROM {s}.runs ORDER BY 2, 1"),
            "files": sorted(str(p.relative_to(settings.home)) for p in settings.home.rglob("*") if p.is_file()),
        }


def test_prune_keeps_the_last_days_drops_the_rest_and_sweeps_dead_leftovers(
        settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    spec = trained_toy(engine, settings.schema, rows_per_day=60)
    for day in DAYS:
        summary = score_day(engine, spec, day, run_id=f"r-{day}", results_dir=settings.home / "validation")
        check_day_drift(engine, spec, day, run_id=summary.run_id, report_dir=settings.home / "drift")
    s = settings.schema
    with engine.begin() as conn:
        for day in (DAYS[0], DAYS[2]):
            conn.execute(sa.text(f"INSERT INTO {s}.quarantine (model_name, partition_date, run_id, shard, entity_key, "
                                 "reasons, row_data) VALUES ('toy', :d, :r, 0, '1', '[]', '{}')"),
                         {"d": day, "r": f"r-{day}"})
            conn.execute(sa.text(f"INSERT INTO {s}.shadow_predictions (model_name, partition_date, model_version, "
                                 "entity_key, score, run_id) VALUES ('toy', :d, 2, '1', 0.5, 'x')"), {"d": day})
            conn.execute(sa.text(f"INSERT INTO {s}.alerts (model_name, kind, severity, partition_date, message, "
                                 "details) VALUES ('toy', 'dataset_drift', 'warning', :d, 'm', '{}')"), {"d": day})
        # what a finished run left (as if its process died between two statements), and a staging table
        # whose run row is gone
        conn.execute(sa.text(f"CREATE TABLE {staging_table(spec, f'r-{DAYS[0]}')} (x int)"))
        conn.execute(sa.text(f"CREATE VIEW {shard_view(spec, f'r-{DAYS[3]}', 0)} AS SELECT 1 AS x"))
        conn.execute(sa.text(f"CREATE TABLE {spec.predictions.qualified('toy_predictions__s_0123456789')} (x int)"))
    with lifecycle.RunLease(engine, spec.name, "live"):  # a run in progress: its lease is held during prune
        live_plan = plan_run(engine, spec, DAYS[3], run_id="live", run_type="cli")
        # a dead run: planned in one process that then went away (planned after `live`: a plan cleans up
        # the dead runs it finds, and this one must be left for prune)
        with lifecycle.RunLease(engine, spec.name, "killed") as lease:
            plan_run(engine, spec, DAYS[3], run_id="killed", run_type="cli")
            lease.touch(single_process=True)
        before = _state(engine, settings, spec)
        assert any(name == ("toy_predictions__s_0123456789",) for name in before["objects"])

        dry = prune(engine, spec, keep_days=2, home=settings.home, schema=s, today=TODAY, dry_run=True)
        assert _state(engine, settings, spec) == before  # a dry run changes nothing

        done = prune(engine, spec, keep_days=2, home=settings.home, schema=s, today=TODAY)
        after = _state(engine, settings, spec)
        live_kept = sa.inspect(engine).has_table(live_plan.staging_table.rpartition(".")[2], schema=s)

    gone = [spec.predictions.partition(d) for d in DAYS[:2]]
    assert dry.cutoff == done.cutoff == DAYS[2]
    assert dry.partitions == done.partitions == gone
    assert dry.rows == done.rows
    assert dry.rows["quarantine"] == 1 and dry.rows["shadow_predictions"] == 1 and dry.rows["runs"] == 2
    # alerts: DAYS[0]'s, and the training's gate alert, dated the day the version was trained as of
    assert dry.rows["drift_days"] == 2 and dry.rows["alerts"] == 2
    assert dry.files == done.files and len(dry.files) == 4  # 2 drift reports, 2 validation folders
    assert set(dry.leftovers) == set(done.leftovers)
    swept = "\n".join(done.leftovers)
    assert staging_table(spec, f"r-{DAYS[0]}") in swept and shard_view(spec, f"r-{DAYS[3]}", 0) in swept
    assert "toy_predictions__s_0123456789" in swept
    assert done.dead_runs == [f"killed ({DAYS[3]})"]  # cleaned by lifecycle.cleanup_dead_runs
    assert any("run live is running" in kept for kept in done.kept_leftovers)

    kept_days = [(d, n) for d, n in before["predictions"] if d >= DAYS[2]]
    assert after["predictions"] == kept_days and len(kept_days) == 2
    assert after["partitions"] == [(spec.predictions.partition(d).rpartition(".")[2],) for d in DAYS[2:]]
    for table in ("quarantine", "shadow_predictions", "drift_days", "alerts", "published_days"):
        # (an alert without a day, the gate's, counts by its creation date: today, kept)
        assert after[table] == [(d, n) for d, n in before[table] if d is None or d >= DAYS[2]], table
    assert [r for r in after["runs"] if r[1] < DAYS[2]] == []
    assert ("live", DAYS[3], "running") in after["runs"] and ("killed", DAYS[3], "failed") in after["runs"]
    assert [f for f in after["files"] if str(DAYS[0]) in f or str(DAYS[1]) in f] == []
    assert [f for f in after["files"] if str(DAYS[2]) in f and f.endswith(".html")]
    assert live_kept  # the live run's staging table survived the sweep
    assert after["objects"] == [o for o in after["objects"] if "toy_predictions__s_0123456789" not in o[0]]


def test_prune_command_dry_run_lists_and_bad_keep_days_is_refused(settings: Settings, engine: sa.Engine,
                                                                  tmp_path: Path) -> None:
    spec = toy_spec(settings.schema)
    env = {**os.environ, "ML_BATCH_DATABASE_URL": settings.database_url or "", "ML_BATCH_SCHEMA": settings.schema,
           "ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(write_spec(spec, tmp_path / "specs"))}
    (settings.home / "drift" / "toy").mkdir(parents=True)
    (settings.home / "drift" / "toy" / "2020-01-01.html").write_text("<html/>")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ml_batch.cli", "prune", "--model", "toy", *args], env=env,
                              capture_output=True, text=True, timeout=300, cwd=REPO, check=False)

    dry = cli("--keep-days", "30", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert listed["dry_run"] is True and listed["files"] == [str(settings.home / "drift" / "toy" / "2020-01-01.html")]
    assert (settings.home / "drift" / "toy" / "2020-01-01.html").exists()
    refused = cli("--keep-days", "0")
    assert refused.returncode == 2 and "--keep-days" in refused.stderr


def test_prune_sweeps_what_a_finished_dry_run_left(settings: Settings, engine: sa.Engine) -> None:
    """A dry run is finished like a published one (`runs.FINISHED`): what it left behind (a GX view a killed
    shard attempt left, which the run's own publish could not drop) is swept. Prune used to keep a dry run's
    leftovers for ever, as belonging to a run still in progress."""
    spec = trained_toy(engine, settings.schema, rows_per_day=60)
    summary = score_day(engine, spec, DAYS[0], run_id="dry", dry_run=True)
    assert summary.status == "dry_run"
    view = shard_view(spec, "dry", 0)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE VIEW {view} AS SELECT 1 AS x"))
    done = prune(engine, spec, keep_days=30, home=settings.home, schema=settings.schema, today=TODAY)
    assert done.leftovers == [f"{view} (run dry, dry_run)"] and done.kept_leftovers == []
    assert not sa.inspect(engine).has_table(view.rpartition(".")[2], schema=settings.schema)

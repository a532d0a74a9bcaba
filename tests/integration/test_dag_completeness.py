"""The daily DAG waits for an incomplete day without holding a worker slot (real Airflow `dag.test()`)."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.ops import alerts
from ml_batch.run.day import score_day
from ml_batch.run.runs import list_runs
from tests.integration.helpers import airflow_task_env
from tests.support.toy import DAY, ROWS_PER_DAY, trained_toy

pytestmark = pytest.mark.integration

#: A short wait, re-checked every second: what `validation.wait_for_volume` / `recheck_every` are in hours.
WAITING = {"wait_for_volume": "8s", "recheck_every": "1s"}


@pytest.fixture()
def waiting_toy(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    spec = trained_toy(engine, settings.schema, validation=WAITING)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    for day in (DAY - dt.timedelta(days=14), DAY - dt.timedelta(days=7)):  # two whole Thursdays of history
        score_day(engine, spec, day, run_id=f"history-{day}")
    return spec


def _hold_back(engine: sa.Engine, spec, share: float) -> list[tuple]:
    """Remove all but `share` of DAY's source rows (they have not landed yet); the removed rows."""
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        return conn.execute(sa.text(
            f"DELETE FROM {spec.source.table} WHERE id IN (SELECT id FROM {spec.source.table} WHERE event_time >= :s "
            "AND event_time < :e ORDER BY id OFFSET :keep) RETURNING id, event_time, x1, x2, color"),
            {"s": start, "e": start + dt.timedelta(days=1), "keep": round(ROWS_PER_DAY * share)}).all()


def _land(engine: sa.Engine, spec, rows: list[tuple]) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {spec.source.table} (id, event_time, x1, x2, color) "
                             "VALUES (:id, :event_time, :x1, :x2, :color)"), [row._asdict() for row in rows])


def _run(spec, *, plan_retries: int = 0):
    from ml_batch.airflow import dag_factory

    dag = dag_factory.build_dag(spec)
    for t in dag.tasks:
        t.retries = plan_retries if t.task_id == "plan" else 0
    return dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})


def _plan_instance(run):
    [ti] = [ti for ti in run.get_task_instances() if ti.task_id == "plan"]
    return ti


def test_a_day_that_fills_while_the_plan_waits_is_published_whole(engine: sa.Engine, waiting_toy) -> None:
    late = _hold_back(engine, waiting_toy, 0.4)
    landing = threading.Timer(3.0, _land, args=(engine, waiting_toy, late))
    landing.start()
    try:
        run = _run(waiting_toy)
    finally:
        landing.cancel()
        landing.join()
    assert run.state == "success"
    recorded = list_runs(engine, "toy")[0]
    assert (recorded["run_id"], recorded["status"], recorded["rows_extracted"], recorded["partial"]) == (
        run.run_id, "success", ROWS_PER_DAY, False)
    assert not [a for a in alerts.recent(engine, "toy") if a["kind"] == "incomplete_day"]


def test_a_day_that_never_fills_fails_after_the_wait_with_an_alert_and_no_retry(engine: sa.Engine,
                                                                                  waiting_toy) -> None:
    late = _hold_back(engine, waiting_toy, 0.4)
    started = dt.datetime.now(dt.UTC)
    run = _run(waiting_toy, plan_retries=2)
    waited = (dt.datetime.now(dt.UTC) - started).total_seconds()
    assert run.state == "failed" and waited >= 8
    plan = _plan_instance(run)
    assert plan.state == "failed" and plan.try_number == 1, "an incomplete day is not retried"
    # One alert, of its own kind, from the task's failure callback (and the champion's promotion before it).
    [alert] = [a for a in alerts.recent(engine, "toy") if a["kind"] != "gate_promote"]
    assert (alert["kind"], alert["partition_date"], alert["run_id"]) == ("incomplete_day", DAY, run.run_id)
    assert f"32 rows, expected about {ROWS_PER_DAY}" in alert["message"]
    assert "waited 8s (validation.wait_for_volume)" in alert["message"]
    assert list_runs(engine, "toy")[0]["run_id"].startswith("history-"), "no run was recorded"
    assert alert["state"] == "open"
    # The rows land and the day is run again: published whole, the open alert is resolved (issue 21).
    _land(engine, waiting_toy, late)
    again = _run(waiting_toy)
    assert again.state == "success"
    [resolved] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "incomplete_day"]
    assert (resolved["id"], resolved["state"], resolved["resolved_day"]) == (alert["id"], "resolved", DAY)


def test_the_daily_run_reconciles_the_days_before_it_that_took_late_rows(engine: sa.Engine, waiting_toy) -> None:
    yesterday = DAY - dt.timedelta(days=1)
    score_day(engine, waiting_toy, yesterday, run_id="yesterday")
    start = dt.datetime.combine(yesterday, dt.time(23), tzinfo=dt.UTC)
    with engine.begin() as conn:  # 25 rows of yesterday land after it was published
        conn.execute(sa.text(f"INSERT INTO {waiting_toy.source.table} (id, event_time, x1, x2, color) "
                             "SELECT 900000 + g, :t, 0.1 * g, 0.0, 'red' FROM generate_series(1, 25) AS g"),
                     {"t": start})
    run = _run(waiting_toy)
    assert run.state == "success"
    [reconciled] = [r for r in list_runs(engine, "toy") if r["run_type"] == "reconcile"]
    assert (reconciled["partition_date"], reconciled["rows_extracted"]) == (yesterday, ROWS_PER_DAY + 25)
    [alert] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "late_rows"]
    assert alert["partition_date"] == yesterday and alert["run_id"] == reconciled["run_id"]
    assert {r["run_id"] for r in list_runs(engine, "toy") if r["partition_date"] == DAY} == {run.run_id}

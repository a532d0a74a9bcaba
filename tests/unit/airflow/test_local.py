"""`ml_batch.airflow.local`: what a local `dag.test()` run reports (the demo's and `ml-batch airflow run`'s).

Real Airflow (its throwaway metadata database) runs the daily DAG's no-op twin: same tasks, bodies that
return at once, so no ml-batch database is needed to see what Airflow itself says of a run.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from ml_batch.airflow.dag_factory import build_dag
from ml_batch.airflow.local import NO_TASKS, SUCCESS, cores, run_for_day, run_outcome, stack_env
from ml_batch.config import Settings
from ml_batch.spec import Spec


@pytest.fixture()
def noop_dags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_BATCH_NOOP_DAGS", "1")  # dag.test() syncs the DAGs folder, which must hold the twin


def test_a_run_with_no_task_instance_is_never_reported_as_a_success(spec: Spec, airflow_db: None,
                                                                     noop_dags: None) -> None:
    before_start = dt.datetime.combine(spec.start_date - dt.timedelta(days=3), dt.time(6), tzinfo=dt.UTC)
    run = build_dag(spec, noop=True).test(logical_date=before_start)
    # What Airflow itself says: a success, with nothing run (no task instance before the DAG's start).
    assert str(run.state) == SUCCESS and not run.get_task_instances()
    assert run_outcome(run, day="2025-12-29") == {"day": "2025-12-29", "state": NO_TASKS, "run_id": run.run_id,
                                                  "tasks": {}}


def test_a_run_that_ran_its_tasks_reports_them_by_state(spec: Spec, airflow_db: None, noop_dags: None) -> None:
    run = build_dag(spec, noop=True).test(logical_date=dt.datetime(2026, 5, 2, 6, tzinfo=dt.UTC))
    outcome = run_outcome(run, day="2026-05-01")
    assert outcome["state"] == SUCCESS
    tasks = outcome["tasks"]
    assert isinstance(tasks, dict) and tasks.get("skipped") == 1  # signal_drift: no sustained drift
    assert sum(tasks.values()) == len(run.get_task_instances()) and tasks.get("success", 0) > 1


def _scheduled_day(spec: Spec) -> dt.date:
    """The day of the interval the scheduler runs next for a DAG with no scheduled run yet (catchup off: the
    latest complete one), by Airflow's own timetable."""
    from airflow.serialization.encoders import coerce_to_core_timetable
    from airflow.timetables.base import TimeRestriction

    timetable = coerce_to_core_timetable(build_dag(spec, noop=True).timetable)
    start = dt.datetime.combine(spec.start_date, dt.time(), tzinfo=dt.UTC)
    info = timetable.next_dagrun_info(last_automated_data_interval=None,
                                      restriction=TimeRestriction(earliest=start, latest=None, catchup=False))
    assert info is not None and info.logical_date is not None
    return info.logical_date.date()


def test_a_run_for_a_day_scores_that_day_and_its_note_says_the_day(
        spec: Spec, airflow_db: None, noop_dags: None) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from ml_batch.airflow.tasks import RUN_PLAN_KEY

    day = dt.date(2026, 6, 10)
    run = run_for_day(build_dag(spec, noop=True), day)
    plan = next(ti for ti in run.get_task_instances() if ti.task_id == "plan")
    assert run.conf == {"date": "2026-06-10"}
    with create_session() as session:
        assert plan.xcom_pull(task_ids="plan", key=RUN_PLAN_KEY, session=session)["day"] == "2026-06-10"
        # What the run list shows: the day, and how long the run took (not since a borrowed logical date).
        stored = session.scalars(select(DagRun).where(DagRun.run_id == run.run_id)).one()
        assert stored.dag_run_note.content == "scores 2026-06-10"
        assert stored.end_date - stored.start_date < dt.timedelta(minutes=10)


def test_runs_for_days_leave_the_next_scheduled_run_and_a_backfill_of_those_days_alone(
        spec: Spec, airflow_db: None, noop_dags: None) -> None:
    # Before: a run for day D took the logical date D+1 06:00, the one the scheduler gives day D+1's run. The
    # scheduler then logged "run already exists; skipping dagrun creation" and pointed its next run at the same
    # interval again (for ever), and a backfill of those days skipped every day a run already stood for. With
    # no logical date instead, each run replaced the one before and cleared every run's task instances.
    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.backfill import BackfillDagRun, _create_backfill
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_id = f"noop_batch_predict_{spec.name}"
    scheduled = _scheduled_day(spec)
    days = [scheduled - dt.timedelta(days=n) for n in (3, 2, 1)]
    first = run_for_day(build_dag(spec, noop=True), days[0])
    earlier = {ti.task_id: ti.state for ti in first.get_task_instances()}
    for day in days[1:]:
        run_for_day(build_dag(spec, noop=True), day)
    with create_session() as session:
        # A later run leaves an earlier one as it was.
        assert {ti.task_id: ti.state for ti in DagRun.fetch_task_instances(dag_id=dag_id, run_id=first.run_id,
                                                                           session=session)} == earlier

        model = session.scalars(select(DagModel).where(DagModel.dag_id == dag_id)).one()
        expected = dt.datetime.combine(scheduled, dt.time(6), tzinfo=dt.UTC)
        assert model.next_dagrun == expected
        SchedulerJobRunner(job=Job())._create_dag_runs([model], session)
        session.flush()
        created = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.logical_date == expected))
        assert [r.run_type for r in created] == ["scheduled"]
        assert model.next_dagrun == expected + dt.timedelta(days=1)

    # What `airflow backfill create` and POST /api/v2/backfills call, with their default reprocess behaviour.
    midnight = dt.datetime.combine(days[0], dt.time(), tzinfo=dt.UTC)
    backfill = _create_backfill(dag_id=dag_id, from_date=midnight, to_date=midnight + dt.timedelta(days=2, hours=23),
                                max_active_runs=3, reverse=False, dag_run_conf=None, triggering_user_name="pytest")
    with create_session() as session:
        rows = session.scalars(select(BackfillDagRun).where(BackfillDagRun.backfill_id == backfill.id)).all()
        assert [(r.logical_date.date(), r.exception_reason) for r in rows] == [(day, None) for day in days]
        assert all(r.dag_run_id is not None for r in rows)


def test_the_local_stack_runs_the_local_executor_with_a_slot_per_core(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # `airflow standalone` forced the LocalExecutor; a CeleryExecutor from the shell would run no task here.
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("AIRFLOW__CORE__PARALLELISM", raising=False)
    env = stack_env(Settings(home=tmp_path, specs_dir=tmp_path, database_url="postgresql://u@127.0.0.1:1/db"))
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__PARALLELISM"] == str(cores())

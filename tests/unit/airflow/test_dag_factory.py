"""The daily DAG's schedule: its cron, and the source's readiness Asset when the spec names one."""

from __future__ import annotations

from ml_batch.spec import Spec


def test_a_spec_with_a_ready_asset_schedules_the_daily_dag_on_it_and_on_its_cron(spec: Spec) -> None:
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from ml_batch.airflow.dag_factory import build_dag

    ready = spec.model_copy(update={"source": spec.source.model_copy(update={"ready_asset": "s3://loads/apps"})})
    schedule = build_dag(ready).timetable
    assert isinstance(schedule, AssetOrTimeSchedule)
    assert schedule.asset_condition.uri == "s3://loads/apps"
    assert isinstance(schedule.timetable, CronDataIntervalTimetable)
    assert isinstance(build_dag(spec).timetable, CronDataIntervalTimetable)

"""A spec's schedules are checked at load as Airflow's cron timetables check them (`ml_batch.schedules`)."""

from __future__ import annotations

import pytest
from airflow.sdk.definitions.timetables._cron import CRON_PRESETS as AIRFLOW_PRESETS
from airflow.sdk.exceptions import AirflowTimetableInvalid
from airflow.timetables.interval import CronDataIntervalTimetable
from pydantic import ValidationError

from ml_batch.schedules import CRON_PRESETS, cron_expression, schedule_problem
from ml_batch.spec import Spec
from tests.support.toy import toy_spec

SCHEDULES = ["0 6 * * *", "@daily", "@weekly", "@quarterly", "@yearly", "@midnight", "*/15 * * * *",
             "0 6 * * 1-5", "0 0 * * * 30", "every morning", "0 25 * * *", "0 6 * *", "", "@fortnightly",
             "61 * * * *", "0 6 29 2 *", "0 6 * * MON-FRI"]


def _airflow_takes(schedule: str) -> bool:
    try:
        CronDataIntervalTimetable(schedule, timezone="UTC").validate()
    except AirflowTimetableInvalid:
        return False
    return True


def test_the_presets_are_airflows() -> None:
    assert CRON_PRESETS == AIRFLOW_PRESETS
    assert cron_expression("@quarterly") == "0 0 1 */3 *" and cron_expression("0 6 * * *") == "0 6 * * *"


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_schedule_loads_exactly_when_airflow_takes_it(schedule: str) -> None:
    assert (schedule_problem(schedule) is None) == _airflow_takes(schedule)


def test_a_bad_schedule_is_refused_at_load_naming_its_value_and_field() -> None:
    data = toy_spec("s").model_dump(mode="json")
    with pytest.raises(ValidationError, match=r"(?s)schedule\n.*'every morning' is not a cron schedule .*"
                                              r"expected five fields such as '0 6 \* \* \*' or a preset"):
        Spec.model_validate({**data, "schedule": "every morning"})
    with pytest.raises(ValidationError, match=r"(?s)training.schedule\n.*'0 25 \* \* \*' is not a cron schedule"):
        Spec.model_validate({**data, "training": {**data["training"], "schedule": "0 25 * * *"}})
    assert Spec.model_validate({**data, "schedule": "@quarterly"}).schedule == "@quarterly"


@pytest.mark.parametrize(("schedule", "said"), [
    ("0 6 31 2 *", "never fires"),  # Airflow parses it, then its scheduler fails on it
    ("R 6 * * *", "random or hashed field"),  # another minute at every parse of the DAG file
    ("H 6 * * *", "random or hashed field"),
])
def test_a_schedule_airflow_takes_but_cannot_run_right_is_refused(schedule: str, said: str) -> None:
    assert _airflow_takes(schedule) or schedule.startswith("H")
    problem = schedule_problem(schedule)
    assert problem is not None and problem.startswith(f"{schedule!r}") and said in problem

"""The publish-by rule (`ml_batch.monitoring.late.due_by`): which day must be published by when, without a database."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from ml_batch.errors import ConfigError
from ml_batch.monitoring.late import DueDay, due_by
from ml_batch.spec import Spec, format_validation_error
from tests.integration.helpers import toy_spec


def _spec(publish_by: str | None, schedule: str = "0 6 * * *") -> Spec:
    return toy_spec("s", publish_by=publish_by, schedule=schedule)


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=dt.UTC)


def test_the_day_a_run_scores_is_due_at_the_first_publish_by_after_the_run_fired() -> None:
    spec = _spec("08:00")  # the run of 03-09 fires on 03-10 at 06:00
    assert due_by(spec, _at(10, 7, 59)) == DueDay(dt.date(2026, 3, 8), _at(9, 8))
    assert due_by(spec, _at(10, 8)) == DueDay(dt.date(2026, 3, 9), _at(10, 8))
    assert due_by(spec, _at(10, 23)) == DueDay(dt.date(2026, 3, 9), _at(10, 8))


def test_a_publish_by_before_the_runs_time_is_the_next_days() -> None:
    spec = _spec("05:00")  # the run of 03-09 fires on 03-10 at 06:00, after that day's 05:00
    assert due_by(spec, _at(10, 5, 30)).day == dt.date(2026, 3, 8)  # type: ignore[union-attr]
    assert due_by(spec, _at(11, 5)) == DueDay(dt.date(2026, 3, 9), _at(11, 5))


def test_a_weekly_schedules_day_is_due_from_its_first_deadline_on() -> None:
    spec = _spec("08:00", schedule="0 6 * * 1")  # Mondays: 2026-03-09 is one; its run scores 03-02
    due = DueDay(dt.date(2026, 3, 2), _at(9, 8))
    assert due_by(spec, _at(9, 8)) == due
    assert due_by(spec, _at(12, 9)) == due, "a later check still names the first deadline"


def test_no_publish_by_and_no_scheduled_day_yet_are_no_deadline() -> None:
    assert due_by(_spec(None), _at(10, 9)) is None
    early = toy_spec("s", publish_by="08:00", start_date="2026-03-10")
    assert due_by(early, _at(10, 9)) is None  # the first run (of 03-10) fires on 03-11


def test_now_must_be_aware() -> None:
    with pytest.raises(ConfigError, match="no time zone"):
        due_by(_spec("08:00"), dt.datetime(2026, 3, 10, 9))


@pytest.mark.parametrize("value", ["8:00", "24:00", "08:60", "0800", "08:00Z"])
def test_publish_by_is_a_24_hour_time(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _spec(value)
    assert format_validation_error(caught.value).startswith(
        f"field 'publish_by': {value!r} is not a time of day: expected HH:MM (24-hour, UTC)")


def test_a_yearly_schedules_day_is_due_a_year_and_more_later() -> None:
    # The deadline of a yearly day is 366 days or more after it: the search once stopped at 366 and raised.
    utc = dt.UTC
    spec = _spec("08:00", schedule="@yearly")  # 2028-01-01's run fires 2029-01-01 00:00
    assert due_by(spec, dt.datetime(2029, 3, 1, tzinfo=utc)) == DueDay(
        dt.date(2028, 1, 1), dt.datetime(2029, 1, 1, 8, tzinfo=utc))
    spec = _spec("05:00", schedule="0 6 1 1 *")  # 2027-01-01's run fires 2028-01-01 06:00, after that 05:00
    assert due_by(spec, dt.datetime(2028, 3, 1, tzinfo=utc)) == DueDay(
        dt.date(2027, 1, 1), dt.datetime(2028, 1, 2, 5, tzinfo=utc))

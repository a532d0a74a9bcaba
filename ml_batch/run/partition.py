"""Which day a run scores: the one rule shared by scheduled runs, manual runs and backfills.

A run for day D scores the source rows with D <= date_column < D+1 (UTC). D is, in order:

1. the `date` param when an operator gives one (manual runs from the UI or the REST API);
2. else, for a run triggered by the source's readiness Asset (`source.ready_asset`), the day its loader
   named in the Asset event's extra, `{"day": "YYYY-MM-DD"}`;
3. else the UTC date of the run's data interval start: the daily DAGs use a data-interval timetable
   (`CronDataIntervalTimetable`), so a scheduled run that fires on D+1 covers [D, D+1) and scores D, and
   a backfill run for D covers the same interval;
4. else (an Airflow 3 manual run without a logical date, so without a data interval) the last complete UTC
   day before the run was triggered: `run_after` minus one day.

`logical_date`/`ds` are deliberately not used: for manual runs Airflow infers the interval that *ends*
at the logical date, so the same field would mean D for one kind of run and D+1 for another.

`scheduled_days` is rule 3 seen from the calendar, without Airflow: which day the latest scheduled run that
fired scored (the day that should be published by now) and which day the next one will score, and when;
`scored_days` lists the days the schedule scores in a range.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ml_batch.errors import ConfigError
from ml_batch.schedules import cron_expression, schedule_problem


def resolve_day(param_date: str | dt.date | None, interval_start: dt.datetime | None,
                run_after: dt.datetime | None, *, event_day: object = None) -> dt.date:
    """The partition day of a run (see the module docstring for the rule); `event_day` is the `day` of the
    triggering readiness Asset event's extra (None: not triggered by one)."""
    if param_date:
        return _date(param_date, "param date")
    if event_day is not None:
        return _date(event_day, "the readiness Asset event's extra 'day'")
    if interval_start is not None:
        return _utc(interval_start).date()
    if run_after is not None:
        return _utc(run_after).date() - dt.timedelta(days=1)
    raise ConfigError("cannot tell which day to score: no 'date' param, no data interval and no run_after")


@dataclass(frozen=True)
class ScheduledDays:
    """What a daily schedule says at a moment (`scheduled_days`).

    Attributes:
        due_day: The day the latest scheduled run that fired by then scored (None: none has fired since the
            spec's `start_date`): the day that should be published.
        next_day: The day the next scheduled run will score.
        next_run_at: When that run fires (UTC): the end of its data interval.
    """

    due_day: dt.date | None
    next_day: dt.date
    next_run_at: dt.datetime


def scheduled_days(schedule: str, now: dt.datetime, start: dt.date) -> ScheduledDays:
    """The days a spec's `schedule` (a cron, in UTC) scores around `now` (aware), as the daily DAG's
    `CronDataIntervalTimetable` does: consecutive ticks T < T' make the interval [T, T'), whose run fires at T'
    and scores T's UTC date (rule 3 of the module docstring). Intervals start at the first tick on or after
    `start` (the spec's `start_date`).

    Raises:
        ConfigError: `schedule` is not a cron schedule Airflow takes (`ml_batch.schedules`), or
            `now` has no time zone.
    """
    from croniter import croniter  # Airflow's own cron library (a dependency of apache-airflow-core)

    moment = _utc(now)
    schedule = _cron(schedule)
    first = croniter(schedule, dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC) - dt.timedelta(microseconds=1))
    first_start: dt.datetime = first.get_next(dt.datetime)
    ticks = croniter(schedule, moment)
    current: dt.datetime = ticks.get_prev(dt.datetime)  # the interval in progress starts here
    previous: dt.datetime = ticks.get_prev(dt.datetime)  # the last interval that ended (its run has fired)
    next_start = max(current, first_start)
    next_run_at: dt.datetime = croniter(schedule, next_start).get_next(dt.datetime)
    return ScheduledDays(due_day=previous.date() if previous >= first_start else None,
                         next_day=next_start.date(), next_run_at=next_run_at)


def scored_days(schedule: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """The days from `first` to `last` (inclusive) that a run of `schedule` scores (rule 3: the UTC dates its
    intervals start on), oldest first; every day for a daily cron, the scheduled days of a weekly one.

    Raises:
        ConfigError: `schedule` is not a cron schedule Airflow takes (`ml_batch.schedules`).
    """
    from croniter import croniter

    cron, days, day = _cron(schedule), [], first
    while day <= last:  # from each scored day straight to the next: one step per day, whatever the frequency
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) - dt.timedelta(microseconds=1)
        day = croniter(cron, start).get_next(dt.datetime).date()
        if day <= last:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _cron(schedule: str) -> str:
    """The cron expression croniter reads for `schedule` (a preset resolved), or ConfigError saying why not."""
    problem = schedule_problem(schedule)
    if problem is not None:
        raise ConfigError(f"schedule {problem}")
    return cron_expression(schedule)


def _date(value: object, what: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigError(f"{what}={value!r} is not a date: expected YYYY-MM-DD") from exc


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ConfigError(f"timestamp {moment.isoformat()} has no time zone: expected an aware datetime")
    return moment.astimezone(dt.UTC)

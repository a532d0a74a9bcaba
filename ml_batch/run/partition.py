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
"""

from __future__ import annotations

import datetime as dt

from ml_batch.errors import ConfigError


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

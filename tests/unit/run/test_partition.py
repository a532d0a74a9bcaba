from __future__ import annotations

import datetime as dt

import pytest

from ml_batch.errors import ConfigError
from ml_batch.run.partition import resolve_day, scored_days

UTC = dt.UTC
D = dt.date(2026, 11, 3)


def test_scheduled_and_backfill_runs_score_the_interval_start_day() -> None:
    # CronDataIntervalTimetable("0 6 * * *"): the run firing on D+1 06:00 covers [D 06:00, D+1 06:00).
    start = dt.datetime(2026, 11, 3, 6, tzinfo=UTC)
    assert resolve_day(None, start, dt.datetime(2026, 11, 4, 6, tzinfo=UTC)) == D


def test_the_date_param_wins() -> None:
    start = dt.datetime(2026, 11, 20, 6, tzinfo=UTC)
    assert resolve_day("2026-11-03", start, None) == D
    assert resolve_day(D, None, None) == D


def test_manual_run_without_logical_date_scores_yesterday() -> None:
    assert resolve_day(None, None, dt.datetime(2026, 11, 4, 0, 30, tzinfo=UTC)) == D


def test_other_time_zones_are_converted_to_utc() -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    assert resolve_day(None, dt.datetime(2026, 11, 4, 8, tzinfo=tokyo), None) == D


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match="param date='03/11/2026' is not a date"):
        resolve_day("03/11/2026", None, None)
    with pytest.raises(ConfigError, match="has no time zone"):
        resolve_day(None, dt.datetime(2026, 11, 3), None)
    with pytest.raises(ConfigError, match="cannot tell which day"):
        resolve_day(None, None, None)


def test_a_run_triggered_by_the_readiness_asset_scores_the_day_its_event_names() -> None:
    interval = dt.datetime(2026, 11, 9, 6, tzinfo=UTC)
    assert resolve_day(None, interval, None, event_day="2026-11-03") == D
    assert resolve_day("2026-11-04", interval, None, event_day="2026-11-03") == D + dt.timedelta(days=1), \
        "an operator's date param wins"
    with pytest.raises(ConfigError, match="the readiness Asset event's extra 'day'='yesterday' is not a date"):
        resolve_day(None, interval, None, event_day="yesterday")


def test_scored_days_are_the_days_a_schedules_intervals_start_on() -> None:
    may = dt.date(2026, 5, 1)
    assert scored_days("0 6 * * *", may, dt.date(2026, 5, 3)) == [may, dt.date(2026, 5, 2), dt.date(2026, 5, 3)]
    assert scored_days("0 6 * * 1", may, dt.date(2026, 5, 31)) == [dt.date(2026, 5, d) for d in (4, 11, 18, 25)]
    assert scored_days("0 */6 * * *", may, may) == [may]  # four intervals, one day
    assert scored_days("@quarterly", dt.date(2026, 1, 1), dt.date(2026, 12, 31)) == [
        dt.date(2026, m, 1) for m in (1, 4, 7, 10)]
    assert scored_days("0 6 * * *", may, dt.date(2026, 4, 30)) == []
    with pytest.raises(ConfigError, match="schedule 'daily' is not a cron schedule"):
        scored_days("daily", may, may)

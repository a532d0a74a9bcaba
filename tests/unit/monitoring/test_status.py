"""What needs attention (`ml_batch.monitoring.status.ModelStatus`) and which day a schedule scores next
(`ml_batch.run.partition.scheduled_days`), without a database."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from ml_batch.errors import ConfigError
from ml_batch.monitoring.status import LastRun, ModelStatus
from ml_batch.run.partition import scheduled_days

DAY = dt.date(2026, 5, 21)
NOW = dt.datetime(2026, 5, 23, 7, tzinfo=dt.UTC)  # the run of 05-22 fired at 06:00


def _run(**changes: Any) -> LastRun:
    run = LastRun(day=DAY + dt.timedelta(days=1), run_id="r", status="success", run_type="scheduled", version=2,
                  rows_extracted=200, rows_quarantined=5, partial=False, error=None)
    return dataclasses.replace(run, **changes)


def _fine(**changes: Any) -> ModelStatus:
    """A model with nothing wrong: champion, its due day published, no drift, realized above the floor."""
    status = ModelStatus(
        model="toy", champion=2, last_run=_run(), due_day=DAY + dt.timedelta(days=1), due_status="success",
        drift_day=DAY + dt.timedelta(days=1), dataset_drift=False, metric="roc_auc", estimate=0.8,
        estimate_reliable=True, estimate_reasons=(), realized_day=DAY - dt.timedelta(days=2), realized=0.81,
        floor=0.7, open_alerts=0, worst_severity=None, next_day=DAY + dt.timedelta(days=2),
        next_run_at=dt.datetime(2026, 5, 24, 6, tzinfo=dt.UTC))
    return dataclasses.replace(status, **changes)


def test_a_model_with_nothing_wrong_needs_no_attention() -> None:
    assert _fine().needs_attention == ()
    assert _fine().as_dict()["needs_attention"] == []


@pytest.mark.parametrize(("changes", "reason"), [
    ({"champion": None}, "no champion version: nothing can be scored"),
    ({"last_run": _run(status="failed", error="batch failed validation: x1 above 10.0"), "due_status": "failed"},
     "the last run (2026-05-22, r) failed: batch failed validation: x1 above 10.0"),
    ({"due_status": None}, "2026-05-22 is not published (no run of it)"),
    ({"due_status": "dry_run"}, "2026-05-22 is not published (its latest run is dry_run)"),
    ({"open_alerts": 2, "worst_severity": "critical"}, "2 open alerts, the worst critical"),
    ({"open_alerts": 1, "worst_severity": "warning"}, "1 open alert, the worst warning"),
    ({"dataset_drift": True}, "dataset drift on 2026-05-22"),
    ({"realized": 0.65}, "realized roc_auc 0.6500 on 2026-05-19 is below the floor 0.7"),
    ({"metric": "mae", "realized": 31.0, "floor": 30.0},
     "realized mae 31.0000 on 2026-05-19 is above the ceiling 30.0"),
])
def test_each_rule_gives_one_reason(changes: dict[str, Any], reason: str) -> None:
    [said] = _fine(**changes).needs_attention
    assert said.startswith(reason)


@pytest.mark.parametrize("changes", [
    {"estimate_reliable": False, "estimate_reasons": ("x1 out of support",)},  # shown, alerted where found
    {"open_alerts": 1, "worst_severity": "info"},
    {"due_status": "running"},  # on its way
    {"due_day": None, "due_status": None},  # nothing due yet (start_date ahead)
    {"realized": None, "realized_day": None},  # no labels yet
    {"floor": None, "realized": 0.2},  # no floor: nothing to be past
])
def test_what_is_not_by_itself_a_reason(changes: dict[str, Any]) -> None:
    assert _fine(**changes).needs_attention == ()


def test_a_failed_last_run_of_the_due_day_is_said_once() -> None:
    failed = _fine(last_run=_run(status="failed", error="boom"), due_status="failed")
    assert len(failed.needs_attention) == 1
    older = _fine(last_run=_run(day=DAY, status="failed", error="boom"), due_status=None)
    assert [r.split(" ")[0] for r in older.needs_attention] == ["the", "2026-05-22"]


def test_the_quarantine_share_is_quarantined_over_extracted() -> None:
    assert _run().quarantine_share == 5 / 200
    assert _run(rows_extracted=None, rows_quarantined=None).quarantine_share is None
    assert _run(rows_extracted=0, rows_quarantined=0).quarantine_share is None
    assert _fine().as_dict()["last_run"]["quarantine_share"] == 0.025


def test_as_dict_is_plain_json() -> None:
    data = _fine().as_dict()
    assert data["next_run_at"] == "2026-05-24T06:00:00+00:00" and data["due_day"] == "2026-05-22"
    assert data["estimate_reasons"] == [] and data["realized_meets_floor"] is True


@pytest.mark.parametrize(("now", "due", "next_day", "fires"), [
    # the run firing at D+1 06:00 scores D: after it fired, D is due and D+1 is next
    (NOW, dt.date(2026, 5, 22), dt.date(2026, 5, 23), dt.datetime(2026, 5, 24, 6, tzinfo=dt.UTC)),
    # before it fired, the day before is the one due
    (NOW.replace(hour=5), dt.date(2026, 5, 21), dt.date(2026, 5, 22), dt.datetime(2026, 5, 23, 6, tzinfo=dt.UTC)),
])
def test_scheduled_days_follow_the_data_interval(now: dt.datetime, due: dt.date, next_day: dt.date,
                                                 fires: dt.datetime) -> None:
    days = scheduled_days("0 6 * * *", now, dt.date(2026, 1, 1))
    assert (days.due_day, days.next_day, days.next_run_at) == (due, next_day, fires)


def test_nothing_is_due_before_the_start_date() -> None:
    days = scheduled_days("0 6 * * *", NOW, dt.date(2026, 6, 1))
    assert (days.due_day, days.next_day) == (None, dt.date(2026, 6, 1))
    assert days.next_run_at == dt.datetime(2026, 6, 2, 6, tzinfo=dt.UTC)
    first = scheduled_days("0 6 * * *", NOW, NOW.date())  # its first interval is in progress
    assert (first.due_day, first.next_day) == (None, NOW.date())


def test_a_preset_schedule_and_a_bad_one() -> None:
    assert scheduled_days("@daily", NOW, dt.date(2026, 1, 1)).due_day == dt.date(2026, 5, 22)
    # Airflow's own preset, which croniter does not know: the scheduler's days, not an error
    assert scheduled_days("@quarterly", NOW, dt.date(2026, 1, 1)).due_day == dt.date(2026, 1, 1)
    with pytest.raises(ConfigError, match=r"schedule 'every day' is not a cron schedule"):
        scheduled_days("every day", NOW, dt.date(2026, 1, 1))

"""Publish-by deadlines: a `late` alert when the day a spec's schedule should have published is not published by
the spec's `publish_by` (a time of day, UTC).

**The rule** (`due_by`, pure). At each day's `publish_by` the day the schedule should have published by then
(the day the latest scheduled run that fired by then scored: `ml_batch.run.partition.scheduled_days`) must
be published. A day's deadline is the first `publish_by` at which it is that day: with the default schedule
`0 6 * * *` and `publish_by: "08:00"`, day D (scored by the run that fires on D+1 at 06:00) is due on D+1 at
08:00; with `publish_by: "05:00"` on D+2 at 05:00 (the first 05:00 after its run fired).

**The check** (`check_late`) looks at the latest day whose deadline has passed and at every scheduled day
before it back to the model's first published day (at most `LOOKBACK_DAYS`; days before the first published
one were never meant to be scored, or were pruned): each must be published (`published_days`). It does not
look at Airflow: a day whose run never started (the scheduler was down, the DAG paused, the run never created)
is late all the same, which Airflow's Deadline Alerts cannot see (their deadlines belong to a DAG run that
exists; see docs/daily-dag.md). Since catchup is off, a scheduler that comes back after two days scores only
the latest day: the two days between stay late, named, until they are backfilled. `late` is a *condition*
(`ml_batch.ops.alerts.CONDITION_KINDS`), about the latest due day: a second check updates the open alert and
sends nothing; it lists the days not published; publishing a day re-checks (`after_publish`, the daily DAG's
publish task), and the alert is resolved, with one notice, only once none is left.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from ml_batch.db import locks
from ml_batch.db.tables import published_days
from ml_batch.errors import ConfigError, first_line
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.run.partition import scheduled_days, scored_days
from ml_batch.spec import Spec, clock_time

logger = logging.getLogger(__name__)

KIND = "late"
# How far after a day its first deadline is looked for: a yearly schedule's fires a year and a day later.
_DEADLINE_SEARCH_DAYS = 2 * 366
# How far back before the latest due day an unpublished day is looked for.
LOOKBACK_DAYS = 62
# The days named in an alert's message (all of them are in its details).
_NAMED_DAYS = 10

LateState = Literal["late", "published", "none_due", "unchecked"]


@dataclass(frozen=True)
class DueDay:
    """The latest day whose publish-by deadline has passed, and that deadline (UTC)."""

    day: dt.date
    deadline: dt.datetime


@dataclass(frozen=True)
class LateCheck:
    """What a check found: `late` (an alert raised or kept open), `published` or `none_due`; `unchecked` when
    the re-check after a publish could not read the database (the hourly check will)."""

    model: str
    state: LateState
    due: DueDay | None
    alert_id: int | None
    missing: tuple[dt.date, ...] = ()  # the due days not published, oldest first


def due_by(spec: Spec, now: dt.datetime) -> DueDay | None:
    """The latest day of `spec` whose deadline (module docstring) has passed at `now` (aware); None without
    `publish_by`, or when no scheduled day is due yet (before the spec's `start_date`).

    Raises:
        ConfigError: the spec's `schedule` is not a cron expression, or `now` has no time zone.
    """
    if spec.publish_by is None:
        return None
    last = _last_publish_by(clock_time(spec.publish_by), now)
    day = _due_day(spec, last)
    return None if day is None else DueDay(day, deadline_of(spec, day) or last)


def check_late(engine: sa.Engine, spec: Spec, now: dt.datetime, *, dag_id: str | None = None,
               run_id: str | None = None) -> LateCheck:
    """Raise (or keep open) the `late` alert of `spec` when a due day is not published at `now`; resolve it
    when every one is. See the module docstring."""
    due = due_by(spec, now)
    if due is None:
        return LateCheck(spec.name, "none_due", None, None)
    # One check of a model at a time (the hourly one and a publish's re-check): what one reads and what it
    # records are never split by another's, which would open the alert again for a day just published.
    with engine.connect() as guard, guard.begin():
        locks.xact_lock(guard, locks.key(KIND, spec.name, schema=locks.schema_of(engine)))
        return _check(engine, spec, due, now, tuple(unpublished_days(guard, spec, due.day)), dag_id=dag_id,
                      run_id=run_id)


def _check(engine: sa.Engine, spec: Spec, due: DueDay, now: dt.datetime, missing: tuple[dt.date, ...], *,
           dag_id: str | None, run_id: str | None) -> LateCheck:
    """The alert for the days `missing` at `now` (none: every due day is published)."""
    if not missing:
        resolved = alerts.resolve(engine, model=spec.name, kind=KIND, day=due.day, run_id=run_id, dag_id=dag_id,
                                  message=f"every due day up to {due.day} is published")
        return LateCheck(spec.name, "published", due, resolved)
    oldest = missing[0]
    deadline = (due.deadline if oldest == due.day else deadline_of(spec, oldest)) or due.deadline
    named = ", ".join(str(day) for day in missing[:_NAMED_DAYS]) + (" ..." if len(missing) > _NAMED_DAYS else "")
    what = (f"{oldest} is not published: it" if missing == (due.day,) else
            f"{len(missing)} due day{'s are' if len(missing) > 1 else ' is'} not published: {named}; {oldest}")
    alert_id = alerts.record(engine, Alert(
        kind=KIND, severity="warning", model_name=spec.name, partition_date=due.day, dag_id=dag_id,
        run_id=run_id,
        message=f"{what} was due by {deadline:%Y-%m-%d %H:%M} UTC "
                f"(publish_by {spec.publish_by}, schedule {spec.schedule!r})",
        details={"days": [day.isoformat() for day in missing], "deadline": deadline.isoformat(),
                 "publish_by": spec.publish_by, "schedule": spec.schedule,
                 "checked_at": now.astimezone(dt.UTC).isoformat()},
    ))
    return LateCheck(spec.name, "late", due, alert_id, missing)


def unpublished_days(conn: sa.Connection, spec: Spec, through: dt.date) -> list[dt.date]:
    """The days `spec`'s schedule scores up to `through` (the due day) that hold no published run, oldest first:
    from the model's first published day (none: `through` alone), at most `LOOKBACK_DAYS` before `through`.
    The one rule of a day left behind: the late check and `ml-batch status` both read it."""
    first = conn.execute(sa.select(sa.func.min(published_days.c.partition_date))
                         .where(published_days.c.model_name == spec.name)).scalar_one_or_none()
    since = through if first is None else min(max(first, spec.start_date,
                                                  through - dt.timedelta(days=LOOKBACK_DAYS)), through)
    published = set(conn.execute(sa.select(published_days.c.partition_date).where(
        published_days.c.model_name == spec.name, published_days.c.partition_date.between(since, through)))
        .scalars())
    return [day for day in scored_days(spec.schedule, since, through) if day not in published]


def deadline_of(spec: Spec, day: dt.date) -> dt.datetime | None:
    """The first `publish_by` (UTC) at which `day` is the spec's due day (the module docstring's rule): when it
    became late. No earlier `publish_by` can be: the one before day's own is on the day before it began. None
    when no `publish_by` within two years has `day` due (a later day's run fired first: it is never the due
    day itself, only missing)."""
    at = clock_time(str(spec.publish_by))
    moment = dt.datetime.combine(day, at)
    for _ in range(_DEADLINE_SEARCH_DAYS):
        due = _due_day(spec, moment)
        if due == day:
            return moment
        if due is not None and due > day:
            return None
        moment += dt.timedelta(days=1)
    return None


def after_publish(engine: sa.Engine, spec: Spec, day: dt.date, now: dt.datetime, *, dag_id: str | None = None,
                  run_id: str | None = None) -> LateCheck:
    """Once `day` is published: the check again (the alert moves on to the days still missing, or is resolved);
    without `publish_by` nothing is due, so an open `late` alert (of a spec that once set it) is resolved."""
    if spec.publish_by is None:
        return LateCheck(spec.name, "none_due", None, day_published(engine, spec.name, day, dag_id=dag_id,
                                                                     run_id=run_id))
    try:
        return check_late(engine, spec, now, dag_id=dag_id, run_id=run_id)
    except Exception as exc:  # the day is published: its late re-check must not fail (and retry) it
        logger.exception("%s: the late check after publishing %s could not run (%s: %s); the hourly check of "
                         "publish_deadline_%s will", spec.name, day, type(exc).__name__, first_line(exc), spec.name)
        return LateCheck(spec.name, "unchecked", None, None)


def day_published(engine: sa.Engine, model: str, day: dt.date, *, dag_id: str | None = None,
                  run_id: str | None = None) -> int | None:
    """Resolve the open `late` alert of `model` now that `day` is published (nothing when none is open, or it
    is about a later day); the resolved alert's id."""
    return alerts.resolve(engine, model=model, kind=KIND, day=day, run_id=run_id, dag_id=dag_id,
                          message=f"{day} is published")


def _last_publish_by(at: dt.time, now: dt.datetime) -> dt.datetime:
    """The latest `publish_by` moment at or before `now`."""
    if now.tzinfo is None:
        raise ConfigError(f"now={now.isoformat()} has no time zone: expected an aware datetime")
    moment = now.astimezone(dt.UTC)
    last = dt.datetime.combine(moment.date(), at)
    return last - dt.timedelta(days=1) if last > moment else last


def _due_day(spec: Spec, moment: dt.datetime) -> dt.date | None:
    return scheduled_days(spec.schedule, moment, spec.start_date).due_day

"""What a published day settles: the open alerts its publish answers, wherever it was published.

One home for the daily DAG's publish task and `ml-batch score`: an operator who scores a refused or late day
by hand closes its alerts as the DAG would.

- A day published whole resolves the open `incomplete_day` alert about it, and only it: each refused day has
  its own (`alerts.incomplete_day_subject`), so a later day published whole leaves an earlier refused day
  open. A day published partial (`--allow-partial`) leaves it open. (An alert opened before alerts had a
  day for subject is resolved as it was then: by this day or a later one.)
- A day published at all checks the `late` alert again (`ml_batch.monitoring.late.after_publish`: it moves on
  to the days still missing, or is resolved).

A dry run or a failed run settles nothing.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ml_batch.monitoring.late import LateCheck, after_publish
from ml_batch.ops import alerts
from ml_batch.run.publish import RunSummary
from ml_batch.run.runs import SUCCESS
from ml_batch.spec import Spec


def settle_published_day(engine: sa.Engine, spec: Spec, summary: RunSummary, now: dt.datetime, *,
                         dag_id: str | None = None) -> LateCheck | None:
    """Resolve what `summary`'s publish answers (module docstring); the late re-check, None when the run did not
    publish. Never raises for the alerts' database: the day is published already."""
    if summary.status != SUCCESS:
        return None
    if not summary.partial:
        message = f"{summary.day} was published complete ({summary.scored} rows)"
        for subject in (alerts.incomplete_day_subject(summary.day), None):  # None: opened before subjects
            alerts.resolve(engine, model=spec.name, kind="incomplete_day", day=summary.day, run_id=summary.run_id,
                           subject=subject, dag_id=dag_id, message=message)
    return after_publish(engine, spec, summary.day, now, dag_id=dag_id, run_id=summary.run_id)

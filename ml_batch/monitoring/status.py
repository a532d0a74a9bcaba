"""`ml-batch status`: one row per model saying whether everything is fine, and if not, why.

Each row is read from ml-batch's tables through the readers that own them (`registry.aliases`, `runs.list_runs`
and `latest_per_day`, `daily.stored_day_drift`, `performance.performance_table`, `alerts.open_alerts`) and the
spec's schedule (`ml_batch.run.partition.scheduled_days`). No Airflow: the CLI and the plugin's index call it.

**Needs attention** (`ModelStatus.needs_attention`, one reason each):

- the model has no champion (nothing can be scored);
- the latest run (of the newest day) failed;
- the day the schedule should have published by now (`ScheduledDays.due_day`) is not: no run, or its latest
  finished run did not succeed (a run still going is not a reason: it is on its way; a dead one becomes
  `failed` through `ml-batch runs cleanup`);
- an earlier scheduled day is not published (`late.unpublished_days`: since the model's first published day,
  at most `late.LOOKBACK_DAYS` back): a scheduler that was down scores only the latest day when it comes back
  (catchup is off), and the days between need a backfill;
- an open alert of severity `warning` or above (an `info` one is for the record);
- dataset drift on the last checked day;
- the realized `training.metric` of the latest labelled day on the wrong side of `training.min_score`.

An *unreliable* estimate is shown but is not by itself a reason: its number is not a fact to act on, and what
makes it unreliable (features out of support, dataset drift) raises its own alert where it is found; a
*reliable* estimate past the floor raises a `performance_estimate` warning, which is a reason through the
open alerts (`ml_batch.monitoring.performance`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from ml_batch.db.tables import drift_days
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.model.metrics import HIGHER_IS_BETTER, floor_phrase, meets_floor
from ml_batch.monitoring.daily import stored_day_drift
from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
from ml_batch.monitoring.late import unpublished_days
from ml_batch.monitoring.performance import performance_table
from ml_batch.ops.alerts import SEVERITIES, open_alerts
from ml_batch.run import runs
from ml_batch.run.partition import scheduled_days
from ml_batch.spec import Spec

#: The least severity of an open alert that needs attention.
ATTENTION_SEVERITY = "warning"
# The earlier unpublished days named in a reason (`ModelStatus.missing_days` holds them all).
_NAMED_DAYS = 5


@dataclass(frozen=True)
class LastRun:
    """The latest run of a model (of its newest day, then the latest started)."""

    day: dt.date
    run_id: str
    status: str
    run_type: str
    version: int
    rows_extracted: int | None
    rows_quarantined: int | None
    partial: bool
    error: str | None

    @property
    def quarantine_share(self) -> float | None:
        """rows_quarantined / rows_extracted (None before the run finished, or for a day without rows)."""
        if not self.rows_extracted or self.rows_quarantined is None:
            return None
        return self.rows_quarantined / self.rows_extracted


@dataclass(frozen=True)
class ModelStatus:
    """Where one model stands (`model_status`); `needs_attention` is derived from the other fields.

    Attributes:
        model: The model's name.
        champion: The champion version (None: none).
        last_run: The latest run (None: never run).
        due_day: The day the schedule should have published by now (None: none yet since `start_date`).
        due_status: The status of the due day's latest run (`success`, `failed`, `running`, `dry_run`; None:
            no run of it).
        drift_day: The last day whose drift was checked (None: none).
        dataset_drift: That day's dataset-drift verdict.
        metric: The spec's `training.metric`.
        estimate: The drift check's label-free estimate of `metric` on `drift_day` (None: none).
        estimate_reliable: Whether that estimate can be trusted (None: no estimate).
        estimate_reasons: Why not, when it cannot.
        realized_day: The latest day with a realized `metric` of its published predictions (None: none yet).
        realized: That metric (the worst of the versions that published the day).
        floor: The spec's `training.min_score` (None: no floor).
        open_alerts: How many alerts of the model are open.
        worst_severity: The highest severity among them (None: none open).
        next_day: The day the next scheduled run scores.
        next_run_at: When it fires (UTC).
        missing_days: The scheduled days before `due_day` that are not published, oldest first.
    """

    model: str
    champion: int | None
    last_run: LastRun | None
    due_day: dt.date | None
    due_status: str | None
    drift_day: dt.date | None
    dataset_drift: bool | None
    metric: str
    estimate: float | None
    estimate_reliable: bool | None
    estimate_reasons: tuple[str, ...]
    realized_day: dt.date | None
    realized: float | None
    floor: float | None
    open_alerts: int
    worst_severity: str | None
    next_day: dt.date
    next_run_at: dt.datetime
    missing_days: tuple[dt.date, ...] = ()

    @property
    def realized_meets_floor(self) -> bool | None:
        """Whether the realized metric is on the right side of the floor (None: no realized metric)."""
        return None if self.realized is None else meets_floor(self.metric, self.realized, self.floor)

    @property
    def needs_attention(self) -> tuple[str, ...]:
        """Why an operator should look at this model now, one line each (empty: everything is fine); the rules
        are the module docstring's."""
        reasons: list[str] = []
        run = self.last_run
        if self.champion is None:
            reasons.append("no champion version: nothing can be scored (`ml-batch models promote`)")
        if run is not None and run.status == runs.FAILED:
            reasons.append(f"the last run ({run.day}, {run.run_id}) failed: {run.error or 'no error recorded'}")
        last_run_said_it = run is not None and run.day == self.due_day and run.status == runs.FAILED
        if self.due_day is not None and self.due_status not in (runs.SUCCESS, runs.RUNNING) and not last_run_said_it:
            why = "no run of it" if self.due_status is None else f"its latest run is {self.due_status}"
            reasons.append(f"{self.due_day} is not published ({why}); it was due by the last scheduled run")
        if self.missing_days:
            n, named = len(self.missing_days), ", ".join(str(day) for day in self.missing_days[:_NAMED_DAYS])
            more = f" and {n - _NAMED_DAYS} more" if n > _NAMED_DAYS else ""
            reasons.append(f"{n} earlier scheduled day{'s are' if n != 1 else ' is'} not published: {named}{more} "
                           f"(backfill {'them' if n != 1 else 'it'})")
        if self.worst_severity is not None and _at_least(self.worst_severity, ATTENTION_SEVERITY):
            reasons.append(f"{self.open_alerts} open alert{'s' if self.open_alerts != 1 else ''}, the worst "
                           f"{self.worst_severity} (`ml-batch alerts -m {self.model} --open`)")
        if self.dataset_drift:
            reasons.append(f"dataset drift on {self.drift_day} (`ml-batch drift -m {self.model} -d {self.drift_day}`)")
        if self.realized_meets_floor is False and self.floor is not None and self.realized is not None:
            reasons.append(f"realized {self.metric} {self.realized:.4f} on {self.realized_day} is "
                           f"{floor_phrase(self.metric, self.floor)}")
        return tuple(reasons)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values (dates and times as ISO text), with `quarantine_share`,
        `realized_meets_floor` and `needs_attention`."""
        data = asdict(self)
        if self.last_run is not None:
            data["last_run"]["quarantine_share"] = self.last_run.quarantine_share
        data["realized_meets_floor"] = self.realized_meets_floor
        data["needs_attention"] = list(self.needs_attention)
        return dict(json_safe(data))


def model_status(engine: sa.Engine, specs: Iterable[Spec], *, now: dt.datetime | None = None) -> list[ModelStatus]:
    """One `ModelStatus` per spec, in the order given, as of `now` (aware; default: the current time)."""
    moment = now or dt.datetime.now(dt.UTC)
    return [_status(engine, spec, moment) for spec in specs]


def _status(engine: sa.Engine, spec: Spec, now: dt.datetime) -> ModelStatus:
    name, metric = spec.name, spec.training.metric
    days = scheduled_days(spec.schedule, now, spec.start_date)
    latest = runs.list_runs(engine, name, limit=1)
    due = _due_status(engine, name, days.due_day)
    drift_day = _last_checked_day(engine, name)
    drift = stored_day_drift(engine, name, drift_day) if drift_day is not None else None
    checked = drift is not None and drift.status == "checked"
    realized_day, realized = _realized(engine, spec)
    alerts = open_alerts(engine, name)
    return ModelStatus(
        model=name, champion=registry.aliases(engine, name).get(registry.CHAMPION),
        last_run=_last_run(latest[0]) if latest else None,
        due_day=days.due_day, due_status=due,
        drift_day=drift_day if checked else None,
        dataset_drift=drift.dataset_drift if drift is not None and checked else None,
        metric=metric,
        estimate=drift.estimated.get(f"{ESTIMATED_PREFIX}{metric}") if drift is not None else None,
        estimate_reliable=drift.estimate_reliable if drift is not None else None,
        estimate_reasons=drift.estimate_reasons if drift is not None else (),
        realized_day=realized_day, realized=realized, floor=spec.training.min_score,
        open_alerts=len(alerts),
        worst_severity=max((a["severity"] for a in alerts), key=SEVERITIES.index, default=None),
        next_day=days.next_day, next_run_at=days.next_run_at,
        missing_days=_earlier_unpublished(engine, spec, days.due_day),
    )


def _earlier_unpublished(engine: sa.Engine, spec: Spec, due_day: dt.date | None) -> tuple[dt.date, ...]:
    """The scheduled days before the due day that are not published (the due day has its own reason)."""
    if due_day is None:
        return ()
    with engine.connect() as conn:
        return tuple(day for day in unpublished_days(conn, spec, due_day) if day != due_day)


def _last_run(row: dict[str, Any]) -> LastRun:
    return LastRun(day=row["partition_date"], run_id=row["run_id"], status=row["status"], run_type=row["run_type"],
                   version=row["model_version"], rows_extracted=row["rows_extracted"],
                   rows_quarantined=row["rows_quarantined"], partial=bool(row.get("partial")), error=row["error"])


def _due_status(engine: sa.Engine, model: str, day: dt.date | None) -> str | None:
    """The status of the due day's latest run: its latest finished one, or `running` when one is still going
    and none finished after it (None: no run of the day)."""
    if day is None:
        return None
    ended = runs.latest_per_day(engine, model, day, day)
    if ended and ended[0]["status"] == runs.SUCCESS:
        return runs.SUCCESS
    # The due day is the newest or nearly: its runs are among the model's latest.
    going = [r for r in runs.list_runs(engine, model, limit=100) if r["partition_date"] == day
             and r["status"] == runs.RUNNING]
    if going:
        return runs.RUNNING
    return ended[0]["status"] if ended else None


def _last_checked_day(engine: sa.Engine, model: str) -> dt.date | None:
    """The newest day whose drift check was stored."""
    with engine.connect() as conn:
        day: dt.date | None = conn.execute(sa.select(sa.func.max(drift_days.c.partition_date))
                                           .where(drift_days.c.model_name == model)).scalar_one()
    return day


def _realized(engine: sa.Engine, spec: Spec) -> tuple[dt.date | None, float | None]:
    """The newest day with a realized `training.metric` of its published predictions, and the worst value of
    the versions that published it (the one the floor rule would alert on first)."""
    metric = spec.training.metric
    rows = [r for r in performance_table(engine, spec.name) if r["metric"] == metric
            and (r["detail"] or {}).get("kind") == "published" and r["value"] is not None]
    if not rows:
        return None, None
    day = max(r["partition_date"] for r in rows)
    values = [float(r["value"]) for r in rows if r["partition_date"] == day]
    return day, min(values) if HIGHER_IS_BETTER[metric] else max(values)


def _at_least(severity: str, least: str) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(least)

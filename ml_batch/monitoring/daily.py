"""The daily drift check after publish: day D's scored rows against the scoring version's reference profile.

Drift of day D compares the day's published rows (`ml_batch.monitoring.published`) with the reference
profile stored when the scoring version was registered (`ml_batch.monitoring.drift`). Days larger than
`DRIFT_MAX_ROWS` are checked on a deterministic hash sample of the entity keys (the same rows every time),
which keeps memory and time bounded and changes effect sizes (PSI, KS D, JS) only in the third decimal.
50,000 rows are enough: the reference keeps 5,000 values per numeric feature, and a two-sample KS
statistic's noise scales with sqrt(1/5,000 + 1/n), which is 0.0148 at n = 50,000 and 0.0145 at n = 100,000.

The steps of `check_day_drift`, each returning a value: the day's check (`check_drift`), the window verdict
over the pooled last `drift.window_days` days, the sustained status (`drift.alert_after`: K of the last M
days' window verdicts drifted), the day's label-free performance estimate
(`ml_batch.monitoring.performance`), the HTML report (`ml_batch.monitoring.report`), then one transaction
that replaces the day's stored results and report, and the dataset-drift alert on sustained drift only.
The outcome is a typed `DayDrift`, whose `to_xcom()` is the summary the drift task returns.

Delayed-label performance and shadow scoring, once in this module, are `ml_batch.monitoring.performance`
and `ml_batch.monitoring.shadow`.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pydantic import Field, model_validator

from ml_batch.db.tables import drift_days, drift_results
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.monitoring.classes import ClassScores, frame_class_scores, profile_classes
from ml_batch.monitoring.drift import DriftResult, check_drift
from ml_batch.monitoring.multivariate import MULTIVARIATE
from ml_batch.monitoring.performance import Record, estimate_performance
from ml_batch.monitoring.published import (
    CLASS_SCORES_COLUMN,
    PREDICTED_COLUMN,
    SCORE_COLUMN,
    VERSION_COLUMN,
    day_sample,
    published_rows,
)
from ml_batch.monitoring.report import render_html, write_report
from ml_batch.monitoring.rows import DriftRow
from ml_batch.monitoring.support import OutOfSupport, out_of_support_text
from ml_batch.ops import alerts, reports
from ml_batch.ops.alerts import Alert
from ml_batch.spec import Spec
from ml_batch.steps import StepResult

logger = logging.getLogger(__name__)

DRIFT_MAX_ROWS = 50_000
"""Most rows of a day the drift check reads (a deterministic hash sample above that)."""

_SKIPPED_KEYS = ("status", "reason", "dataset_drift", "sustained_drift")
# Fields a summary stored before they existed lacks (read back with their defaults).
_ADDED_LATER = frozenset({"class_drift", "unseen_classes"})


class DayDrift(StepResult):
    """The outcome of one day's drift check: what `check_day_drift` returns, and (as `to_xcom()`) the summary
    the drift task returns, the metrics and the drift Asset read, and the CLI prints.

    A skipped check (nothing published, no reference profile, a dry run) holds `status`, `reason`,
    `dataset_drift` and `sustained_drift` (both False) only; a checked one every field but `reason`, each
    given explicitly (None where the value is unknown): a missing one is an error naming it.

    Attributes:
        status: "checked" or "skipped".
        reason: Why the check was skipped.
        model: The model's name.
        day: The day checked.
        version: The version that scored the day (the latest, if several did).
        rows_checked: Rows the check read (a hash sample of at most `DRIFT_MAX_ROWS`).
        rows_published: Rows published for the day.
        dataset_drift: The day's own dataset-drift verdict.
        score_drift: Whether the score distribution drifted.
        share: Share of drifted features, rounded to 4 decimals.
        drifted_features: The drifted features, in spec order.
        no_values: The features with no non-null value on the day (drifted when their reference had values).
        threshold_source: "calibrated", "fixed" or "mixed".
        weighted_share: Importance-weighted share, rounded to 4 decimals (None: no usable importance).
        share_basis: "count" or "importance": the share `dataset_drift` was decided on.
        window_drift: The verdict over the pooled last `drift.window_days` days.
        window_days: `drift.window_days`.
        sustained_drift: Whether `drift.alert_after` is met (the alert fired and the drift Asset is emitted).
        drifted_days: The days among the last `alert_after.of` whose window verdict drifted.
        estimated: The label-free estimates of the scoring version, by metric (`estimated_<metric>`), on the
            rows the check read.
        out_of_support: The features with at least `drift.out_of_support_share` of the day's values outside
            what the version was trained on, with the bound crossed (`ml_batch.monitoring.support`).
        multivariate_drift: Whether the day's multivariate statistic drifted (None: the profile has none).
        estimate_reliable: Whether the scoring version's estimates can be trusted on the day (None: no
            estimate); when False, `estimate_reasons` says why (`ml_batch.monitoring.reliability`).
        estimate_reasons: Why the estimates are unreliable (empty when reliable).
        notes: The statistics not computed because the version's profile predates them, and why.
        class_drift: Whether a multiclass model's predicted-class mix or a class's probability drifted (None:
            not a multiclass model).
        unseen_classes: The classes predicted on the day that the version's holdout never predicted.
        report: The HTML report's file, when a report folder was given.
        seconds: Time the check took.
    """

    status: Literal["checked", "skipped"]
    reason: str | None = None
    model: str | None = None
    day: dt.date | None = None
    version: int | None = None
    rows_checked: int | None = None
    rows_published: int | None = None
    dataset_drift: bool = False
    score_drift: bool | None = None
    share: float | None = None
    drifted_features: tuple[str, ...] = ()
    no_values: tuple[str, ...] = ()
    threshold_source: str | None = None
    weighted_share: float | None = None
    share_basis: str | None = None
    window_drift: bool | None = None
    window_days: int | None = None
    sustained_drift: bool = False
    drifted_days: tuple[dt.date, ...] = ()
    estimated: dict[str, float | None] = Field(default_factory=dict)
    out_of_support: tuple[OutOfSupport, ...] = ()
    multivariate_drift: bool | None = None
    estimate_reliable: bool | None = None
    estimate_reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    class_drift: bool | None = None
    unseen_classes: tuple[str, ...] = ()
    report: str | None = None
    seconds: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        given = self.model_fields_set
        if self.status == "skipped":
            extra = sorted(given - set(_SKIPPED_KEYS))
            if self.reason is None or extra:
                raise ValueError(f"a skipped drift check holds a reason and only {list(_SKIPPED_KEYS)}; "
                                 f"got reason {self.reason!r} and {extra}")
            return self
        missing = sorted(set(type(self).model_fields) - given - {"reason"} - _ADDED_LATER)
        if missing or self.reason is not None:
            raise ValueError(f"a checked drift check must give every field but 'reason': missing {missing}, "
                             f"reason {self.reason!r}")
        return self

    @classmethod
    def skipped(cls, reason: str) -> DayDrift:
        """A check that did not run, and why."""
        return cls(status="skipped", reason=reason, dataset_drift=False, sustained_drift=False)

    def to_xcom(self) -> dict[str, Any]:
        """The summary as plain JSON: a skipped check's four keys, or a checked one's every key but `reason`."""
        if self.status == "skipped":
            return self.model_dump(mode="json", include=set(_SKIPPED_KEYS))
        return self.model_dump(mode="json", exclude={"reason"})


@dataclass(frozen=True)
class WindowVerdict:
    """The drift verdict of the pooled last `drift.window_days` days (the day's own with a window of 1)."""

    days: int
    first_day: dt.date
    days_with_rows: int
    rows: int
    share: float
    weighted_share: float | None
    share_basis: str
    dataset_drift: bool
    drifted_features: tuple[str, ...]

    @property
    def label(self) -> str:
        """How the report and the alert name the window."""
        return "the day" if self.days == 1 else f"the last {self.days} days pooled"

    def as_detail(self) -> dict[str, Any]:
        """The verdict as stored in `drift_days.detail["window"]` and shown in the report."""
        return {"days": self.days, "first_day": self.first_day.isoformat(), "days_with_rows": self.days_with_rows,
                "rows": self.rows, "share": self.share, "weighted_share": self.weighted_share,
                "share_basis": self.share_basis, "dataset_drift": self.dataset_drift,
                "drifted_features": list(self.drifted_features), "label": self.label}


@dataclass(frozen=True)
class Sustained:
    """Whether `drift.alert_after` is met: `days` of the last `of` days (today included) drifted."""

    days: int
    of: int
    drifted_days: tuple[dt.date, ...]

    @property
    def sustained_drift(self) -> bool:
        """At least `days` of the last `of` days drifted over their window."""
        return len(self.drifted_days) >= self.days

    def as_detail(self) -> dict[str, Any]:
        """The status as stored in `drift_days.detail["sustained"]` and shown in the report."""
        return {"days": self.days, "of": self.of, "drifted_days": [d.isoformat() for d in self.drifted_days],
                "sustained_drift": self.sustained_drift}


@dataclass(frozen=True)
class DayCheck:
    """What a day's check found: the day's result, its window verdict and the sustained status."""

    version: int
    rows: int
    result: DriftResult
    window: WindowVerdict
    sustained: Sustained


def check_day_drift(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str,
                    report_dir: Path | None = None, dag_id: str | None = None,
                    raise_alerts: bool = True) -> DayDrift:
    """Drift of day D's scored rows against the scoring version's reference; results replace the day's.

    The day's own statistics and verdict are stored as they are (`drift_results`, `drift_days`, with the
    summary itself, which `stored_day_drift` reads back). With `drift.window_days` N > 1 the pooled last N
    days are checked too ("window" verdict, equal to the day's verdict when N = 1). The dataset-drift alert
    opens (or stays open), and the summary's `sustained_drift` (which emits the drift Asset) is true, only when
    `drift.alert_after` K of the last M days' window verdicts drifted; a day without sustained drift resolves
    an open one. The day's label-free performance estimates (`estimate_performance`) are shown in the report
    and the summary.

    Args:
        raise_alerts: False to check without opening or resolving any alert (the CLI: reading a day is free
            of side effects on the alert channels; alerts come from the DAG's tasks).
    """
    started = time.perf_counter()
    published = published_rows(engine, spec, day)
    if published == 0:
        return DayDrift.skipped(f"nothing published for {day}")
    frame = day_sample(engine, spec, day, DRIFT_MAX_ROWS)
    version = int(sorted(frame[VERSION_COLUMN].unique().tolist())[-1])
    profile = registry.reference_profile(engine, spec.name, version)
    if profile is None:
        logger.warning("%s version %d has no reference profile: drift of %s not checked", spec.name, version, day)
        return DayDrift.skipped(f"version {version} has no reference profile")
    check = _check(engine, spec, day, version, profile, frame)
    estimates = estimate_performance(engine, spec, day, run_id=run_id, dag_id=dag_id, frame=frame,
                                     out_of_support=[entry.feature for entry in check.result.out_of_support],
                                     raise_alerts=raise_alerts)
    # The report is stored with the day's results (the UI plugin reads the database, not a worker's disk);
    # the file is written too when a folder is configured.
    html = render_html(spec.name, version, day, check.result, profile, window=check.window.as_detail(),
                       sustained=check.sustained.as_detail(), estimates=estimates)
    report_path = write_report(html, report_dir, spec.name, day) if report_dir is not None else None
    summary = _summary(spec, day, check, published=published, estimates=estimates, report_path=report_path,
                       seconds=time.perf_counter() - started)
    _store(engine, spec, day, check, summary, run_id=run_id, html=html, report_path=report_path)
    if raise_alerts:
        _alert(engine, spec, day, check, summary, run_id=run_id, dag_id=dag_id)
    return summary


def stored_day_drift(engine: sa.Engine, model: str, day: dt.date) -> DayDrift | None:
    """The summary `check_day_drift` stored for a day; None when the day was never checked, or was checked
    before summaries were stored (run the check again)."""
    with engine.connect() as conn:
        detail = conn.execute(sa.select(drift_days.c.detail).where(
            drift_days.c.model_name == model, drift_days.c.partition_date == day)).scalar_one_or_none()
    stored = (detail or {}).get("summary")
    return DayDrift.model_validate(stored) if isinstance(stored, dict) else None


def window_verdict(engine: sa.Engine, spec: Spec, day: dt.date, profile: dict[str, Any], frame: pd.DataFrame,
                   result: DriftResult) -> WindowVerdict:
    """The drift verdict of the pooled last `drift.window_days` days (the day's own with a window of 1).

    Each earlier day contributes a deterministic hash sample of at most DRIFT_MAX_ROWS / N rows, so the
    pooled window stays bounded; all of it is checked against the day's scoring version's reference.
    """
    n_days = spec.drift.window_days
    first = day - dt.timedelta(days=n_days - 1)
    days_with_rows = 1
    if n_days > 1:
        pooled, days_with_rows = _pooled_window(engine, spec, first, n_days, frame)
        result = check_drift(spec, profile, pooled, pooled[SCORE_COLUMN].to_numpy(dtype=np.float64),
                             classes=day_classes(profile, pooled, int(frame[VERSION_COLUMN].max())))
    return WindowVerdict(days=n_days, first_day=first, days_with_rows=days_with_rows, rows=result.n_rows,
                         share=result.share, weighted_share=result.weighted_share, share_basis=result.share_basis,
                         dataset_drift=result.dataset_drift, drifted_features=tuple(result.drifted_features))


def sustained_status(spec: Spec, day: dt.date, earlier_drifted: Sequence[dt.date], drifted_today: bool) -> Sustained:
    """The `drift.alert_after` status of `day` from the earlier days that drifted and today's verdict (pure)."""
    rule = spec.drift.alert_after
    drifted = sorted(earlier_drifted) + ([day] if drifted_today else [])
    return Sustained(days=rule.days, of=rule.of, drifted_days=tuple(drifted))


def day_classes(profile: dict[str, Any], frame: pd.DataFrame, version: int) -> ClassScores | None:
    """The published classes and class probabilities of the rows read that `version` (the profiled multiclass
    version) scored: another version (earlier days of a pooled window) may predict other classes. None: the
    profile is not a multiclass model's."""
    names = profile_classes(profile)
    if names is None:
        return None
    own = frame[frame[VERSION_COLUMN] == version]
    return frame_class_scores(own, names, predicted=PREDICTED_COLUMN, scores=CLASS_SCORES_COLUMN,
                              what=f"the published rows of version {version}")


def drift_table(engine: sa.Engine, model: str, day: dt.date) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The recorded drift verdict and statistics of a day."""
    with engine.connect() as conn:
        head = conn.execute(sa.select(drift_days).where(drift_days.c.model_name == model,
                                                        drift_days.c.partition_date == day)).mappings().first()
        rows = conn.execute(
            sa.select(drift_results).where(drift_results.c.model_name == model, drift_results.c.partition_date == day)
            .order_by(drift_results.c.feature, drift_results.c.test)
        ).mappings().all()
    return (dict(head) if head else None), [dict(r) for r in rows]


def drift_result_records(model: str, day: dt.date, version: int, run_id: str,
                         rows: Sequence[DriftRow]) -> list[dict[str, Any]]:
    """The `drift_results` rows of a day's statistics (pure): plain JSON values (`ml_batch.jsonvalues`), NaN
    and infinity as null."""
    return [
        {"model_name": model, "partition_date": day, "feature": row.feature, "test": row.test,
         "model_version": version, "run_id": run_id, "value": json_safe(row.value),
         "threshold": json_safe(row.threshold), "p_value": json_safe(row.p_value), "drifted": json_safe(row.drifted),
         "detail": json_safe(row.detail)}
        for row in rows
    ]


def drift_day_record(model: str, day: dt.date, check: DayCheck, summary: DayDrift, *, run_id: str,
                     report_path: Path | None) -> dict[str, Any]:
    """The `drift_days` row of a day's verdict (pure); its detail holds the summary (`stored_day_drift`)."""
    result = check.result
    detail = {"threshold_source": result.threshold_source, "weighted_share": result.weighted_share,
              "share_basis": result.share_basis, "no_values": result.no_values, "window": check.window.as_detail(),
              "sustained": check.sustained.as_detail(), "summary": summary.to_xcom()}
    return {"model_name": model, "partition_date": day, "model_version": check.version, "run_id": run_id,
            "rows_checked": check.rows, "features": result.n_features,
            "drifted_features": json_safe(result.drifted_features), "share": json_safe(result.share),
            "dataset_drift": result.dataset_drift, "score_drift": result.score_drift,
            "report_path": str(report_path) if report_path else None, "detail": json_safe(detail)}


def _check(engine: sa.Engine, spec: Spec, day: dt.date, version: int, profile: dict[str, Any],
           frame: pd.DataFrame) -> DayCheck:
    """The day's check, its window verdict and the sustained status."""
    result = check_drift(spec, profile, frame, frame[SCORE_COLUMN].to_numpy(dtype=np.float64),
                         classes=day_classes(profile, frame, version))
    window = window_verdict(engine, spec, day, profile, frame, result)
    earlier = _earlier_drifted_days(engine, spec, day)
    return DayCheck(version, len(frame), result, window, sustained_status(spec, day, earlier, window.dataset_drift))


def _pooled_window(engine: sa.Engine, spec: Spec, first: dt.date, n_days: int,
                   frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The last `n_days` days' rows pooled (each earlier day a hash sample, today every k-th row), and how
    many of the days had rows."""
    per_day = max(1, DRIFT_MAX_ROWS // n_days)
    frames = [day_sample(engine, spec, first + dt.timedelta(days=i), per_day) for i in range(n_days - 1)]
    frames = [f for f in frames if not f.empty]
    today = frame if len(frame) <= per_day else frame.iloc[::math.ceil(len(frame) / per_day)]
    return pd.concat([*frames, today], ignore_index=True), len(frames) + 1


def _earlier_drifted_days(engine: sa.Engine, spec: Spec, day: dt.date) -> list[dt.date]:
    """The days before `day` within `drift.alert_after.of` whose window verdict drifted.

    A day that was not checked counts as not drifted; a day checked before windows existed counts with its
    own verdict.
    """
    earliest = day - dt.timedelta(days=spec.drift.alert_after.of - 1)
    with engine.connect() as conn:
        earlier = conn.execute(sa.select(drift_days.c.partition_date, drift_days.c.dataset_drift, drift_days.c.detail)
                               .where(drift_days.c.model_name == spec.name, drift_days.c.partition_date >= earliest,
                                      drift_days.c.partition_date < day)).all()
    return [d for d, own, detail in earlier if (detail or {}).get("window", {}).get("dataset_drift", own)]


def _store(engine: sa.Engine, spec: Spec, day: dt.date, check: DayCheck, summary: DayDrift, *, run_id: str,
           html: str, report_path: Path | None) -> None:
    """Replace the day's report, statistics and verdict, in one transaction."""
    with engine.begin() as conn:
        reports.delete_day(conn, model=spec.name, day=day, kind=reports.DRIFT_REPORT)
        reports.store(conn, model=spec.name, day=day, kind=reports.DRIFT_REPORT, run_id=run_id, content=html)
        conn.execute(drift_results.delete().where(drift_results.c.model_name == spec.name,
                                                  drift_results.c.partition_date == day))
        conn.execute(drift_results.insert(),
                     drift_result_records(spec.name, day, check.version, run_id, check.result.rows))
        conn.execute(drift_days.delete().where(drift_days.c.model_name == spec.name,
                                               drift_days.c.partition_date == day))
        conn.execute(drift_days.insert().values(**drift_day_record(spec.name, day, check, summary, run_id=run_id,
                                                                   report_path=report_path)))


def _summary(spec: Spec, day: dt.date, check: DayCheck, *, published: int, estimates: Sequence[Record],
             report_path: Path | None, seconds: float) -> DayDrift:
    result = check.result
    own = [r for r in estimates if r["model_version"] == check.version]
    return DayDrift(
        status="checked", model=spec.name, day=day, version=check.version, rows_checked=check.rows,
        rows_published=published, dataset_drift=result.dataset_drift, score_drift=result.score_drift,
        share=round(result.share, 4), drifted_features=tuple(result.drifted_features),
        no_values=tuple(result.no_values),
        threshold_source=result.threshold_source,
        weighted_share=None if result.weighted_share is None else round(result.weighted_share, 4),
        share_basis=result.share_basis, window_drift=check.window.dataset_drift, window_days=check.window.days,
        sustained_drift=check.sustained.sustained_drift, drifted_days=check.sustained.drifted_days,
        estimated={r["metric"]: r["value"] for r in own},
        out_of_support=result.out_of_support,
        multivariate_drift=result.multivariate_drift if any(
            row.feature == MULTIVARIATE for row in result.rows) else None,
        estimate_reliable=bool(own[0]["detail"].get("reliable", True)) if own else None,
        estimate_reasons=tuple(own[0]["detail"].get("unreliable_reasons", ())) if own else (),
        notes=tuple(result.notes),
        class_drift=result.class_drift, unseen_classes=tuple(result.unseen_classes),
        report=str(report_path) if report_path else None, seconds=round(seconds, 3),
    )


def _alert(engine: sa.Engine, spec: Spec, day: dt.date, check: DayCheck, summary: DayDrift, *, run_id: str,
           dag_id: str | None) -> None:
    """Open (or update) the dataset-drift alert on sustained drift; resolve an open one on a day without."""
    if summary.sustained_drift:
        alerts.record(engine, _sustained_alert(spec, day, check, summary, run_id=run_id, dag_id=dag_id))
    else:
        alerts.resolve(engine, model=spec.name, kind="dataset_drift", day=day, run_id=run_id, dag_id=dag_id,
                       message=f"no sustained dataset drift on {day}: {len(check.sustained.drifted_days)} of the "
                               f"last {check.sustained.of} days drifted (alert_after {check.sustained.days})")
    outside = {entry.feature: entry for entry in check.result.out_of_support}
    for name, entry in outside.items():
        alerts.record(engine, Alert(
            kind="out_of_support", severity="warning", model_name=spec.name, partition_date=day, subject=name,
            dag_id=dag_id, run_id=run_id, details=json_safe(asdict(entry)),
            message=f"out of support on {day} (version {check.version}): {out_of_support_text(entry)}"))
    cleared = {row["subject"] for row in alerts.open_alerts(engine, spec.name)
               if row["kind"] == "out_of_support" and row["subject"] not in outside}
    for name in sorted(cleared):
        alerts.resolve(engine, model=spec.name, kind="out_of_support", day=day, subject=name, run_id=run_id,
                       dag_id=dag_id, message=f"{name} is back within the training support on {day}")


def _sustained_alert(spec: Spec, day: dt.date, check: DayCheck, summary: DayDrift, *, run_id: str,
                     dag_id: str | None) -> Alert:
    """The dataset-drift alert of a day with sustained drift; its details are the day's summary."""
    rule = spec.drift.alert_after
    window = check.window
    return Alert(
        kind="dataset_drift", severity="warning", model_name=spec.name, partition_date=day, dag_id=dag_id,
        run_id=run_id, details=summary.to_xcom(),
        message=(f"sustained dataset drift on {day}: {len(check.sustained.drifted_days)} of the last "
                 f"{rule.of} days drifted (alert_after {rule.days} of {rule.of}); "
                 f"{window.label}: {len(window.drifted_features)} of {check.result.n_features} features "
                 f"drifted: {', '.join(window.drifted_features)}"),
    )

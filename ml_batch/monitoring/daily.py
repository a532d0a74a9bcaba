"""Daily monitoring after publish: drift, delayed-label performance and shadow scoring.

- **Drift** of day D compares the day's scored rows with the reference profile stored when the scoring
  version was registered (`ml_batch.drift`). Days larger than `DRIFT_MAX_ROWS` are checked on a
  deterministic hash sample of the entity keys (the same rows every time), which keeps memory and time
  bounded and changes effect sizes (PSI, KS D, JS) only in the third decimal. 50,000 rows are enough:
  the reference keeps 5,000 values per numeric feature, and a two-sample KS statistic's noise scales
  with sqrt(1/5,000 + 1/n), which is 0.0148 at n = 50,000 and 0.0145 at n = 100,000.
- **Performance** of day E = D - labels.delay_days: its labels have arrived, so the predictions published
  for E (and the challenger's shadow predictions) are joined with them and realized metrics recorded.
- **Shadow scoring**: when a `challenger` alias exists, the day's scored rows are scored again by the
  challenger into `shadow_predictions` (never into the analysts' table) and compared with the champion.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ml_batch.db import arrow
from ml_batch.db.sources import select_day
from ml_batch.db.tables import drift_days, drift_results, performance, shadow_comparisons, shadow_predictions
from ml_batch.model import registry
from ml_batch.model.labels import check_one_label_per_row, join_labels
from ml_batch.model.metrics import HIGHER_IS_BETTER, evaluate, meets_floor
from ml_batch.model.training import predict_scores
from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
from ml_batch.ops import alerts, reports
from ml_batch.ops.alerts import Alert
from ml_batch.run.scoring import key_texts
from ml_batch.spec import Spec

if TYPE_CHECKING:
    from ml_batch.monitoring.drift import DriftResult

logger = logging.getLogger(__name__)

DRIFT_MAX_ROWS = 50_000
SCORE_COLUMN = "_score"
VERSION_COLUMN = "_model_version"


# -- reading what was published ----------------------------------------------------------------------------
def _predictions_table(spec: Spec) -> sa.TableClause:
    return sa.table(spec.predictions.table_name, sa.column(spec.source.key), sa.column("partition_date"),
                    sa.column("score"), sa.column("model_version"), schema=spec.predictions.schema_name)


def published_rows(engine: sa.Engine, spec: Spec, day: dt.date) -> int:
    preds = _predictions_table(spec)
    with engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(preds).where(preds.c.partition_date == day)
        ).scalar_one())


def scored_day_sql(spec: Spec, day: dt.date, shard: int = 0, shards: int = 1) -> str:
    """Features of the day's *scored* rows with their published score and version, as plain SQL."""
    src = select_day(spec, day, shard, shards).subquery("day")
    preds = _predictions_table(spec).alias("p")
    stmt = sa.select(
        *[src.c[name] for name in (spec.source.key, *spec.feature_names)],
        preds.c.score.label(SCORE_COLUMN), preds.c.model_version.label(VERSION_COLUMN),
    ).select_from(src.join(preds, sa.and_(
        preds.c[spec.source.key] == src.c[spec.source.key],
        preds.c.partition_date == sa.literal_column(f"DATE '{day.isoformat()}'"),
    )))
    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def _read(engine: sa.Engine, sql: str) -> pd.DataFrame:
    url = engine.url.render_as_string(hide_password=False)
    with arrow.connect(url) as conn:
        batches = list(arrow.stream(conn, sql))
    if not batches:
        return pd.DataFrame()
    return pa.Table.from_batches(batches).to_pandas()


# -- drift ---------------------------------------------------------------------------------------------------
def _day_sample(engine: sa.Engine, spec: Spec, day: dt.date, max_rows: int) -> pd.DataFrame:
    """The day's scored rows, or a deterministic hash sample of about `max_rows` of them (empty: none)."""
    n = published_rows(engine, spec, day)
    if n == 0:
        return pd.DataFrame()
    return _read(engine, scored_day_sql(spec, day, 0, max(1, math.ceil(n / max_rows))))


def check_day_drift(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str,
                    report_dir: Path | None = None, dag_id: str | None = None) -> dict[str, Any]:
    """Drift of day D's scored rows against the scoring version's reference; results replace the day's.

    The day's own statistics and verdict are stored as they are (`drift_results`, `drift_days`). With
    `drift.window_days` N > 1 the pooled last N days are checked too ("window" verdict, equal to the day's
    verdict when N = 1). The dataset-drift alert fires, and the summary's `sustained_drift` (which emits the
    drift Asset) is true, only when `drift.alert_after` K of the last M days' window verdicts drifted.
    Binary models also get the day's label-free performance estimate (`estimate_performance`), shown in
    the report and the summary.
    """
    from ml_batch.monitoring.drift import check_drift
    from ml_batch.monitoring.report import render_html, write_report

    started = time.perf_counter()
    n = published_rows(engine, spec, day)
    if n == 0:
        return {"status": "skipped", "reason": f"nothing published for {day}", "dataset_drift": False,
                "sustained_drift": False}
    frame = _day_sample(engine, spec, day, DRIFT_MAX_ROWS)
    versions = sorted(frame[VERSION_COLUMN].unique().tolist())
    version = int(versions[-1])
    profile = registry.reference_profile(engine, spec.name, version)
    if profile is None:
        logger.warning("%s version %d has no reference profile: drift of %s not checked", spec.name, version, day)
        return {"status": "skipped", "reason": f"version {version} has no reference profile",
                "dataset_drift": False, "sustained_drift": False}
    result = check_drift(spec, profile, frame, frame[SCORE_COLUMN].to_numpy(dtype=np.float64))
    window = _window_verdict(engine, spec, day, profile, frame, result)
    sustained = _sustained(engine, spec, day, bool(window["dataset_drift"]))
    detail = {"threshold_source": result.threshold_source, "weighted_share": result.weighted_share,
              "share_basis": result.share_basis, "window": window, "sustained": sustained}
    estimates = estimate_performance(engine, spec, day, run_id=run_id, dag_id=dag_id)
    # The report is stored with the day's results (the UI plugin reads the database, not a worker's disk);
    # the file is written too when a folder is configured.
    html = render_html(spec.name, version, day, result, profile, window=window, sustained=sustained,
                       estimates=estimates)
    report_path = write_report(html, report_dir, spec.name, day) if report_dir is not None else None
    with engine.begin() as conn:
        reports.delete_day(conn, model=spec.name, day=day, kind=reports.DRIFT_REPORT)
        reports.store(conn, model=spec.name, day=day, kind=reports.DRIFT_REPORT, run_id=run_id, content=html)
        conn.execute(drift_results.delete().where(drift_results.c.model_name == spec.name,
                                                  drift_results.c.partition_date == day))
        conn.execute(drift_results.insert(), [
            {"model_name": spec.name, "partition_date": day, "feature": row.feature, "test": row.test,
             "model_version": version, "run_id": run_id, "value": _finite(row.value), "threshold": row.threshold,
             "p_value": _finite(row.p_value), "drifted": row.drifted, "detail": _json_safe(row.detail)}
            for row in result.rows
        ])
        conn.execute(drift_days.delete().where(drift_days.c.model_name == spec.name,
                                               drift_days.c.partition_date == day))
        conn.execute(drift_days.insert().values(
            model_name=spec.name, partition_date=day, model_version=version, run_id=run_id,
            rows_checked=len(frame), features=result.n_features, drifted_features=result.drifted_features,
            share=result.share, dataset_drift=result.dataset_drift, score_drift=result.score_drift,
            report_path=str(report_path) if report_path else None, detail=_json_safe(detail),
        ))
    summary = {
        "status": "checked", "model": spec.name, "day": day.isoformat(), "version": version,
        "rows_checked": len(frame), "rows_published": n, "dataset_drift": result.dataset_drift,
        "score_drift": result.score_drift, "share": round(result.share, 4),
        "drifted_features": result.drifted_features, "threshold_source": result.threshold_source,
        "weighted_share": None if result.weighted_share is None else round(result.weighted_share, 4),
        "share_basis": result.share_basis,
        "window_drift": window["dataset_drift"], "window_days": window["days"],
        "sustained_drift": sustained["sustained_drift"], "drifted_days": sustained["drifted_days"],
        "estimated": {r["metric"]: r["value"] for r in estimates if r["model_version"] == version},
        "report": str(report_path) if report_path else None, "seconds": round(time.perf_counter() - started, 3),
    }
    if sustained["sustained_drift"]:
        alert_after = spec.drift.alert_after
        alerts.record(engine, Alert(
            kind="dataset_drift", severity="warning", model_name=spec.name, partition_date=day, dag_id=dag_id,
            run_id=run_id, details=summary,
            message=(f"sustained dataset drift on {day}: {len(sustained['drifted_days'])} of the last "
                     f"{alert_after.of} days drifted (alert_after {alert_after.days} of {alert_after.of}); "
                     f"{window['label']}: {len(window['drifted_features'])} of {result.n_features} features "
                     f"drifted: {', '.join(window['drifted_features'])}"),
        ))
    return summary


def _window_verdict(engine: sa.Engine, spec: Spec, day: dt.date, profile: dict[str, Any], frame: pd.DataFrame,
                    result: DriftResult) -> dict[str, Any]:
    """The drift verdict of the pooled last `drift.window_days` days (the day's own with a window of 1).

    Each earlier day contributes a deterministic hash sample of at most DRIFT_MAX_ROWS / N rows, so the
    pooled window stays bounded; all of it is checked against the day's scoring version's reference.
    """
    from ml_batch.monitoring.drift import check_drift

    n_days = spec.drift.window_days
    first = day - dt.timedelta(days=n_days - 1)
    if n_days > 1:
        per_day = max(1, DRIFT_MAX_ROWS // n_days)
        frames = [_day_sample(engine, spec, first + dt.timedelta(days=i), per_day) for i in range(n_days - 1)]
        frames = [f for f in frames if not f.empty]
        today = frame if len(frame) <= per_day else frame.iloc[::math.ceil(len(frame) / per_day)]
        pooled = pd.concat([*frames, today], ignore_index=True)
        result = check_drift(spec, profile, pooled, pooled[SCORE_COLUMN].to_numpy(dtype=np.float64))
        days_checked = len(frames) + 1
    else:
        days_checked = 1
    return {"days": n_days, "first_day": first.isoformat(), "days_with_rows": days_checked,
            "rows": result.n_rows, "share": result.share, "weighted_share": result.weighted_share,
            "share_basis": result.share_basis, "dataset_drift": result.dataset_drift,
            "drifted_features": result.drifted_features,
            "label": "the day" if n_days == 1 else f"the last {n_days} days pooled"}


def _sustained(engine: sa.Engine, spec: Spec, day: dt.date, drifted_today: bool) -> dict[str, Any]:
    """Whether `drift.alert_after` is met: K of the last M days (today included) drifted over their window.

    A day that was not checked counts as not drifted; a day checked before windows existed counts with its
    own verdict.
    """
    rule = spec.drift.alert_after
    earliest = day - dt.timedelta(days=rule.of - 1)
    with engine.connect() as conn:
        earlier = conn.execute(sa.select(drift_days.c.partition_date, drift_days.c.dataset_drift, drift_days.c.detail)
                               .where(drift_days.c.model_name == spec.name, drift_days.c.partition_date >= earliest,
                                      drift_days.c.partition_date < day)).all()
    drifted = sorted(d.isoformat() for d, own, detail in earlier
                     if (detail or {}).get("window", {}).get("dataset_drift", own))
    if drifted_today:
        drifted.append(day.isoformat())
    return {"days": rule.days, "of": rule.of, "drifted_days": drifted, "sustained_drift": len(drifted) >= rule.days}


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


# -- delayed-label performance -----------------------------------------------------------------------------
def labelled_day(spec: Spec, as_of: dt.date) -> dt.date:
    """The event day whose labels are complete at the end of `as_of`."""
    return as_of - dt.timedelta(days=spec.labels.delay_days)


def realized_performance(engine: sa.Engine, spec: Spec, as_of: dt.date, *, run_id: str | None = None,
                         dag_id: str | None = None) -> list[dict[str, Any]]:
    """Realized metrics of day E = as_of - delay_days, per version that scored it (published and shadow).

    A realized metric on the wrong side of `training.min_score` raises a `performance_floor` alert.
    """
    from ml_batch.model.training import labels_of

    day = labelled_day(spec, as_of)
    preds = _predictions_table(spec)
    published = sa.select(preds.c[spec.source.key].label("k"), preds.c.partition_date.label("day"), preds.c.score,
                          preds.c.model_version, sa.literal("published").label("kind")).where(
        preds.c.partition_date == day)
    shadow = sa.select(shadow_predictions.c.entity_key.label("k"), shadow_predictions.c.partition_date.label("day"),
                       shadow_predictions.c.score, shadow_predictions.c.model_version,
                       sa.literal("shadow").label("kind")).where(
        shadow_predictions.c.model_name == spec.name, shadow_predictions.c.partition_date == day)
    frames = []
    with engine.connect() as conn:
        for scored, text_keys in ((published.subquery("scored"), False), (shadow.subquery("scored"), True)):
            what = f"realized performance of {day} ({'shadow' if text_keys else 'published'} predictions)"
            check_one_label_per_row(conn, spec, scored, key="k", day="day", as_of=as_of, what=what,
                                    text_keys=text_keys)
            frames.append(pd.read_sql(join_labels(spec, scored, key="k", day="day", as_of=as_of,
                                                  text_keys=text_keys), conn))
    frames = [f for f in frames if not f.empty]
    if not frames:
        logger.info("%s: no labelled predictions for %s yet", spec.name, day)
        return []
    data = pd.concat(frames, ignore_index=True)
    records: list[dict[str, Any]] = []
    for (version, kind), group in data.groupby(["model_version", "kind"]):
        y = labels_of(group, spec)
        scores = group["score"].to_numpy(dtype=np.float64)
        metrics = evaluate(spec.model.task, y, scores)
        detail: dict[str, Any] = {"kind": kind}
        if spec.model.task == "binary":
            detail["calibration"] = calibration_by_decile(y, scores)
            metrics["calibration_error"] = float(np.average(
                [abs(b["mean_score"] - b["positive_rate"]) for b in detail["calibration"]],
                weights=[b["n"] for b in detail["calibration"]]))
        for metric, value in metrics.items():
            if metric == "n":
                continue
            records.append({"model_name": spec.name, "model_version": int(version), "partition_date": day,
                            "metric": metric, "value": _finite(value), "n": len(group), "detail": detail})
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.not_like(f"{ESTIMATED_PREFIX}%")))
        _record_estimation_error(conn, spec, day, records)
        conn.execute(performance.insert(), records)
        _update_shadow_metrics(conn, spec, day, records)
    _alert_on_floor(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def estimate_performance(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str | None = None,
                         dag_id: str | None = None) -> list[dict[str, Any]]:
    """Label-free estimates of day D's published predictions (binary models; `ml_batch.estimate`).

    Stored in `performance` as metrics `estimated_roc_auc` and `estimated_accuracy` (detail kind
    "estimated", with the confusion matrix and the assumption), per version that scored the day, using that
    version's calibration map. An estimated `training.metric` on the wrong side of `training.min_score`
    raises a `performance_estimate` alert, long before the labels can. Nothing for regression models or
    versions without a calibration map.
    """
    from ml_batch.monitoring.estimate import ASSUMPTION, ESTIMATED_METRICS, calibrate, estimate_binary

    if spec.model.task != "binary":
        return []
    preds = _predictions_table(spec)
    with engine.connect() as conn:
        scored = pd.read_sql(sa.select(preds.c.model_version, preds.c.score).where(preds.c.partition_date == day),
                             conn)
    records: list[dict[str, Any]] = []
    for version, group in scored.groupby("model_version"):
        profile = registry.reference_profile(engine, spec.name, int(version)) or {}
        calibration = profile.get("score_calibration")
        if calibration is None:
            logger.info("%s version %s has no score calibration map: no estimate for %s", spec.name, version, day)
            continue
        scores = group["score"].to_numpy(dtype=np.float64)
        estimate = estimate_binary(scores, calibrate(calibration, scores), spec.predictions.threshold)
        detail = {"kind": "estimated", "assumption": ASSUMPTION, "threshold": spec.predictions.threshold,
                  "confusion": estimate["confusion"], "expected_positive_rate": estimate["expected_positive_rate"],
                  "run_id": run_id}
        records += [{"model_name": spec.name, "model_version": int(version), "partition_date": day,
                     "metric": f"{ESTIMATED_PREFIX}{metric}", "value": _finite(estimate[metric]),
                     "n": estimate["n"], "detail": _json_safe(detail)} for metric in ESTIMATED_METRICS]
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.like(f"{ESTIMATED_PREFIX}%")))
        if records:
            conn.execute(performance.insert(), records)
    _alert_on_estimate(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def _record_estimation_error(conn: sa.Connection, spec: Spec, day: dt.date, records: list[dict[str, Any]]) -> None:
    """Put the realized value and the error (estimated - realized) next to each estimate of the day, and the
    estimate into the realized record's detail."""
    estimates = conn.execute(sa.select(performance).where(
        performance.c.model_name == spec.name, performance.c.partition_date == day,
        performance.c.metric.like(f"{ESTIMATED_PREFIX}%"))).mappings().all()
    realized = {(r["model_version"], r["metric"]): r for r in records if r["detail"].get("kind") == "published"}
    for estimate in estimates:
        record = realized.get((estimate["model_version"], estimate["metric"].removeprefix(ESTIMATED_PREFIX)))
        if record is None or record["value"] is None or estimate["value"] is None:
            continue
        error = estimate["value"] - record["value"]
        conn.execute(performance.update().where(
            performance.c.model_name == spec.name, performance.c.partition_date == day,
            performance.c.model_version == estimate["model_version"], performance.c.metric == estimate["metric"],
        ).values(detail={**estimate["detail"], "realized": record["value"], "error": error}))
        record["detail"] = {**record["detail"], "estimated": estimate["value"], "estimation_error": error}


ESTIMATE_ALERT = "performance_estimate"


def _alert_on_estimate(engine: sa.Engine, spec: Spec, day: dt.date, records: list[dict[str, Any]], *,
                       run_id: str | None, dag_id: str | None) -> None:
    floor = spec.training.min_score
    metric = f"{ESTIMATED_PREFIX}{spec.training.metric}"
    for r in records:
        if floor is None or r["metric"] != metric or r["value"] is None:
            continue
        if meets_floor(spec.training.metric, r["value"], floor):
            continue
        message = (f"estimated {spec.training.metric} {r['value']:.4f} of version {r['model_version']} on {day} "
                   f"({r['n']} rows, no labels yet; assumes no concept drift) is below the floor {floor}")
        if ESTIMATE_ALERT not in alerts.KINDS:
            # ml_batch.alerts does not list the kind yet (its owner adds it): say so loudly, never fail the day.
            logger.warning("%s: alert kind %r is not in ml_batch.alerts.KINDS, not recorded: %s", spec.name,
                           ESTIMATE_ALERT, message)
            continue
        alerts.record(engine, Alert(
            kind=ESTIMATE_ALERT, severity="warning", model_name=spec.name, partition_date=day, dag_id=dag_id,
            run_id=run_id, details={k: v for k, v in r.items() if k != "detail"}, message=message,
        ))


def calibration_by_decile(y: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    """Mean score vs observed positive rate per score decile (pure)."""
    order = np.argsort(scores, kind="stable")
    bins = np.array_split(order, 10)
    return [{"decile": i + 1, "n": len(b), "mean_score": float(scores[b].mean()),
             "positive_rate": float(y[b].mean())} for i, b in enumerate(bins) if len(b)]


def _update_shadow_metrics(conn: sa.Connection, spec: Spec, day: dt.date, records: list[dict[str, Any]]) -> None:
    metric = spec.training.metric
    values = {(r["model_version"], r["detail"]["kind"]): (r["value"], r["n"]) for r in records if r["metric"] == metric}
    rows = conn.execute(sa.select(shadow_comparisons).where(
        shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day)).mappings().all()
    for row in rows:
        champion = values.get((row["champion_version"], "published"))
        challenger = values.get((row["challenger_version"], "shadow"))
        conn.execute(shadow_comparisons.update().where(
            shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day,
            shadow_comparisons.c.challenger_version == row["challenger_version"],
        ).values(metric=metric, champion_metric=champion[0] if champion else None,
                 challenger_metric=challenger[0] if challenger else None,
                 labelled_n=challenger[1] if challenger else None))


def _alert_on_floor(engine: sa.Engine, spec: Spec, day: dt.date, records: list[dict[str, Any]], *,
                    run_id: str | None, dag_id: str | None) -> None:
    floor = spec.training.min_score
    metric = spec.training.metric
    if floor is None:
        return
    for r in records:
        if r["metric"] != metric or r["detail"]["kind"] != "published" or r["value"] is None:
            continue
        below = r["value"] < floor if HIGHER_IS_BETTER[metric] else r["value"] > floor
        if below:
            alerts.record(engine, Alert(
                kind="performance_floor", severity="critical", model_name=spec.name, partition_date=day,
                dag_id=dag_id, run_id=run_id, details={k: v for k, v in r.items() if k != "detail"},
                message=(f"realized {metric} {r['value']:.4f} of version {r['model_version']} on {day} "
                         f"({r['n']} labelled rows) is below the floor {floor}"),
            ))


def performance_table(engine: sa.Engine, model: str, limit: int = 200) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(performance).where(performance.c.model_name == model)
            .order_by(performance.c.partition_date.desc(), performance.c.model_version, performance.c.metric)
            .limit(limit)
        ).mappings().all()
    return [dict(r) for r in rows]


# -- shadow scoring ----------------------------------------------------------------------------------------
def shadow_score(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str) -> dict[str, Any] | None:
    """Score the day's published rows with the challenger into `shadow_predictions` and compare."""
    challenger_version = registry.aliases(engine, spec.name).get(registry.CHALLENGER)
    if challenger_version is None:
        return None
    challenger = registry.load(engine, spec, challenger_version)
    url = engine.url.render_as_string(hide_password=False)
    n = agree = 0
    sums = np.zeros(5)  # Σx, Σy, Σxx, Σyy, Σxy for the Pearson correlation, streamed
    champion_version: int | None = None
    with engine.begin() as conn:
        conn.execute(shadow_predictions.delete().where(
            shadow_predictions.c.model_name == spec.name, shadow_predictions.c.partition_date == day,
            shadow_predictions.c.model_version == challenger_version))
    with arrow.connect(url) as reader, arrow.connect(url) as writer:
        for batch in arrow.stream(reader, scored_day_sql(spec, day)):
            frame = batch.to_pandas()
            if frame.empty:
                continue
            champion_version = int(frame[VERSION_COLUMN].iloc[0])
            x = frame[SCORE_COLUMN].to_numpy(dtype=np.float64)
            y = predict_scores(challenger.pipeline, frame, spec)
            threshold = spec.predictions.threshold
            labels = (y >= threshold).astype(np.int16) if spec.model.task == "binary" else None
            if spec.model.task == "binary":
                agree += int(((x >= threshold) == (y >= threshold)).sum())
            n += len(y)
            sums += [x.sum(), y.sum(), (x * x).sum(), (y * y).sum(), (x * y).sum()]
            arrow.append(writer, f"{_schema_of(engine)}.shadow_predictions", pa.table({
                "model_name": pa.repeat(pa.scalar(spec.name), len(y)),
                "partition_date": pa.repeat(pa.scalar(day, pa.date32()), len(y)),
                "model_version": pa.repeat(pa.scalar(challenger_version, pa.int32()), len(y)),
                # The one key-to-text rule (uuid keys arrive from ADBC as 16 bytes): labels join on this text.
                "entity_key": pa.array(key_texts(batch.column(spec.source.key)), pa.string()),
                "score": pa.array(y, pa.float64()),
                "predicted_label": pa.array(labels, pa.int16()) if labels is not None else pa.nulls(len(y), pa.int16()),
                "run_id": pa.repeat(pa.scalar(run_id), len(y)),
                "scored_at": pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC")), len(y)),
            }))
            writer.commit()
    if n == 0 or champion_version is None:
        return None
    correlation = _pearson(n, sums)
    comparison = {"model_name": spec.name, "partition_date": day, "challenger_version": challenger_version,
                  "champion_version": champion_version, "n": n,
                  "agreement": agree / n if spec.model.task == "binary" else None, "score_correlation": correlation}
    with engine.begin() as conn:
        conn.execute(shadow_comparisons.delete().where(
            shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day,
            shadow_comparisons.c.challenger_version == challenger_version))
        conn.execute(shadow_comparisons.insert().values(**comparison))
    logger.info("%s %s shadow: challenger %d vs champion %d on %d rows, agreement %s, correlation %s", spec.name,
                day, challenger_version, champion_version, n, comparison["agreement"], correlation)
    return {**comparison, "partition_date": day.isoformat()}


def _schema_of(engine: sa.Engine) -> str:
    translate = engine.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(shadow_predictions.schema, shadow_predictions.schema))


def _pearson(n: int, sums: np.ndarray) -> float | None:
    sx, sy, sxx, syy, sxy = sums
    cov = sxy - sx * sy / n
    var_x, var_y = sxx - sx * sx / n, syy - sy * sy / n
    if var_x <= 0 or var_y <= 0:
        return None
    return float(cov / math.sqrt(var_x * var_y))


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return _finite(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value

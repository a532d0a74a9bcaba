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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ml_batch import alerts, registry
from ml_batch.alerts import Alert
from ml_batch.db import arrow
from ml_batch.db.tables import drift_days, drift_results, performance, shadow_comparisons, shadow_predictions
from ml_batch.labels import check_one_label_per_row, join_labels
from ml_batch.metrics import HIGHER_IS_BETTER, evaluate
from ml_batch.sources import select_day
from ml_batch.spec import Spec
from ml_batch.training import predict_scores

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


# -- drift -------------------------------------------------------------------------------------------------
def check_day_drift(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str,
                    report_dir: Path | None = None, dag_id: str | None = None) -> dict[str, Any]:
    """Drift of day D's scored rows against the scoring version's reference; results replace the day's."""
    from ml_batch.drift import check_drift
    from ml_batch.drift_report import render_html, write_report

    started = time.perf_counter()
    n = published_rows(engine, spec, day)
    if n == 0:
        return {"status": "skipped", "reason": f"nothing published for {day}"}
    shards = max(1, math.ceil(n / DRIFT_MAX_ROWS))
    frame = _read(engine, scored_day_sql(spec, day, 0, shards))
    versions = sorted(frame[VERSION_COLUMN].unique().tolist())
    version = int(versions[-1])
    profile = registry.reference_profile(engine, spec.name, version)
    if profile is None:
        logger.warning("%s version %d has no reference profile: drift of %s not checked", spec.name, version, day)
        return {"status": "skipped", "reason": f"version {version} has no reference profile"}
    result = check_drift(spec, profile, frame, frame[SCORE_COLUMN].to_numpy(dtype=np.float64))
    report_path = None
    if report_dir is not None:
        report_path = write_report(render_html(spec.name, version, day, result, profile), report_dir, spec.name, day)
    with engine.begin() as conn:
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
            report_path=str(report_path) if report_path else None,
        ))
    summary = {
        "status": "checked", "model": spec.name, "day": day.isoformat(), "version": version,
        "rows_checked": len(frame), "rows_published": n, "dataset_drift": result.dataset_drift,
        "score_drift": result.score_drift, "share": round(result.share, 4),
        "drifted_features": result.drifted_features, "report": str(report_path) if report_path else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    if result.dataset_drift:
        alerts.record(engine, Alert(
            kind="dataset_drift", severity="warning", model_name=spec.name, partition_date=day, dag_id=dag_id,
            run_id=run_id, details=summary,
            message=(f"dataset drift on {day}: {len(result.drifted_features)} of {result.n_features} features "
                     f"drifted ({result.share:.0%} >= drift_share {spec.drift.drift_share:.0%}): "
                     f"{', '.join(result.drifted_features)}"),
        ))
    return summary


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
    from ml_batch.training import labels_of

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
                                                performance.c.partition_date == day))
        conn.execute(performance.insert(), records)
        _update_shadow_metrics(conn, spec, day, records)
    _alert_on_floor(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


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
                "entity_key": pa.array(frame[spec.source.key].astype(str).to_numpy(), pa.string()),
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

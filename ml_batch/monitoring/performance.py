"""Performance of the published predictions: realized once the labels arrive, estimated before they do.

- **Realized**: on day D the labels of day E = D - labels.delay_days have arrived, so the predictions
  published for E (and the challenger's shadow predictions) are joined with them and their metrics
  recorded in `performance`, per version and kind ("published", "shadow"); a shadow comparison of E gets
  both sides' metric. A realized `training.metric` on the wrong side of `training.min_score` raises a
  `performance_floor` alert.
- **Estimated** (binary models): day D's published scores go through each version's score calibration map
  (`ml_batch.monitoring.estimate`) into label-free estimates, stored as metrics `estimated_<metric>`. An
  estimate on the wrong side of the floor raises a `performance_estimate` alert, long before the labels can.
  When the labels arrive, the realized value and the estimation error are put next to the estimate.

Everything stored goes through `ml_batch.jsonvalues.json_safe` (no NaN, no numpy scalars).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.db.tables import performance, shadow_comparisons, shadow_predictions
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.model.labels import check_one_label_per_row, join_labels
from ml_batch.model.metrics import evaluate, meets_floor
from ml_batch.model.training import labels_of
from ml_batch.monitoring.estimate import (
    ASSUMPTION,
    ESTIMATED_METRICS,
    ESTIMATED_PREFIX,
    calibrate,
    estimate_binary,
)
from ml_batch.monitoring.published import predictions_table
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

ESTIMATE_ALERT = "performance_estimate"
"""Alert kind of an estimate below the floor."""

Record = dict[str, Any]
"""A row of the `performance` table (model_name, model_version, partition_date, metric, value, n, detail)."""


def labelled_day(spec: Spec, as_of: dt.date) -> dt.date:
    """The event day whose labels are complete at the end of `as_of`."""
    return as_of - dt.timedelta(days=spec.labels.delay_days)


def realized_performance(engine: sa.Engine, spec: Spec, as_of: dt.date, *, run_id: str | None = None,
                         dag_id: str | None = None) -> list[Record]:
    """Realized metrics of day E = as_of - delay_days, per version that scored it (published and shadow).

    The day's realized records replace the ones stored before (its estimates stay, with the realized value
    and the error next to them). A realized metric on the wrong side of `training.min_score` raises a
    `performance_floor` alert.
    """
    day = labelled_day(spec, as_of)
    data = _labelled_predictions(engine, spec, day, as_of)
    if data is None:
        logger.info("%s: no labelled predictions for %s yet", spec.name, day)
        return []
    records = realized_records(spec, day, data)
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.not_like(f"{ESTIMATED_PREFIX}%")))
        _record_estimation_error(conn, spec, day, records)
        conn.execute(performance.insert(), records)
        _update_shadow_metrics(conn, spec, day, records)
    _alert_on_floor(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def realized_records(spec: Spec, day: dt.date, data: pd.DataFrame) -> list[Record]:
    """The `performance` records of labelled predictions (columns model_version, kind, score and the label),
    per version and kind (pure)."""
    records: list[Record] = []
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
        stored = json_safe(detail)
        records += [{"model_name": spec.name, "model_version": int(version), "partition_date": day,
                     "metric": metric, "value": json_safe(value), "n": len(group), "detail": stored}
                    for metric, value in metrics.items() if metric != "n"]
    return records


def estimate_performance(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str | None = None,
                         dag_id: str | None = None) -> list[Record]:
    """Label-free estimates of day D's published predictions (binary models; `ml_batch.monitoring.estimate`).

    Stored in `performance` as metrics `estimated_roc_auc` and `estimated_accuracy` (detail kind
    "estimated", with the confusion matrix and the assumption), per version that scored the day, using that
    version's calibration map. An estimated `training.metric` on the wrong side of `training.min_score`
    raises a `performance_estimate` alert, long before the labels can. Nothing for regression models or
    versions without a calibration map.
    """
    if spec.model.task != "binary":
        return []
    preds = predictions_table(spec)
    with engine.connect() as conn:
        scored = pd.read_sql(sa.select(preds.c.model_version, preds.c.score).where(preds.c.partition_date == day),
                             conn)
    records: list[Record] = []
    for version, group in scored.groupby("model_version"):
        profile = registry.reference_profile(engine, spec.name, int(version)) or {}
        calibration = profile.get("score_calibration")
        if calibration is None:
            logger.info("%s version %s has no score calibration map: no estimate for %s", spec.name, version, day)
            continue
        records += estimate_records(spec, day, int(version), group["score"].to_numpy(dtype=np.float64), calibration,
                                    run_id=run_id)
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.like(f"{ESTIMATED_PREFIX}%")))
        if records:
            conn.execute(performance.insert(), records)
    _alert_on_estimate(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def estimate_records(spec: Spec, day: dt.date, version: int, scores: np.ndarray, calibration: Mapping[str, Any], *,
                     run_id: str | None) -> list[Record]:
    """The `performance` records of one version's label-free estimates of a day (pure)."""
    estimate = estimate_binary(scores, calibrate(calibration, scores), spec.predictions.threshold)
    detail = {"kind": "estimated", "assumption": ASSUMPTION, "threshold": spec.predictions.threshold,
              "confusion": estimate["confusion"], "expected_positive_rate": estimate["expected_positive_rate"],
              "notes": estimate["notes"], "run_id": run_id}
    return [{"model_name": spec.name, "model_version": version, "partition_date": day,
             "metric": f"{ESTIMATED_PREFIX}{metric}", "value": json_safe(estimate[metric]),
             "n": estimate["n"], "detail": json_safe(detail)} for metric in ESTIMATED_METRICS]


def calibration_by_decile(y: np.ndarray, scores: np.ndarray) -> list[dict[str, float]]:
    """Mean score vs observed positive rate per score decile (pure)."""
    order = np.argsort(scores, kind="stable")
    bins = np.array_split(order, 10)
    return [{"decile": i + 1, "n": len(b), "mean_score": float(scores[b].mean()),
             "positive_rate": float(y[b].mean())} for i, b in enumerate(bins) if len(b)]


def performance_table(engine: sa.Engine, model: str, limit: int = 200) -> list[Record]:
    """The latest `limit` performance records of a model (realized and estimated), newest day first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(performance).where(performance.c.model_name == model)
            .order_by(performance.c.partition_date.desc(), performance.c.model_version, performance.c.metric)
            .limit(limit)
        ).mappings().all()
    return [dict(r) for r in rows]


def _labelled_predictions(engine: sa.Engine, spec: Spec, day: dt.date, as_of: dt.date) -> pd.DataFrame | None:
    """The day's published and shadow predictions joined with their labels (None: no labelled row yet).

    Raises:
        LabelJoinError: If the labels do not join the predictions one to one.
    """
    preds = predictions_table(spec)
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
    return pd.concat(frames, ignore_index=True) if frames else None


def _record_estimation_error(conn: sa.Connection, spec: Spec, day: dt.date, records: list[Record]) -> None:
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
        ).values(detail=json_safe({**estimate["detail"], "realized": record["value"], "error": error})))
        record["detail"] = json_safe({**record["detail"], "estimated": estimate["value"], "estimation_error": error})


def _update_shadow_metrics(conn: sa.Connection, spec: Spec, day: dt.date, records: list[Record]) -> None:
    """Both sides' `training.metric` on each shadow comparison of the day, and the challenger's labelled rows."""
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


def _alert_on_floor(engine: sa.Engine, spec: Spec, day: dt.date, records: list[Record], *,
                    run_id: str | None, dag_id: str | None) -> None:
    """A `performance_floor` alert per published version whose realized `training.metric` misses the floor."""
    floor = spec.training.min_score
    metric = spec.training.metric
    if floor is None:
        return
    for r in records:
        if r["metric"] != metric or r["detail"]["kind"] != "published" or r["value"] is None:
            continue
        if meets_floor(metric, r["value"], floor):
            continue
        alerts.record(engine, Alert(
            kind="performance_floor", severity="critical", model_name=spec.name, partition_date=day,
            dag_id=dag_id, run_id=run_id, details={k: v for k, v in r.items() if k != "detail"},
            message=(f"realized {metric} {r['value']:.4f} of version {r['model_version']} on {day} "
                     f"({r['n']} labelled rows) is below the floor {floor}"),
        ))


def _alert_on_estimate(engine: sa.Engine, spec: Spec, day: dt.date, records: list[Record], *,
                       run_id: str | None, dag_id: str | None) -> None:
    """A `performance_estimate` alert per version whose estimated `training.metric` misses the floor."""
    floor = spec.training.min_score
    metric = f"{ESTIMATED_PREFIX}{spec.training.metric}"
    for r in records:
        if floor is None or r["metric"] != metric or r["value"] is None:
            continue
        if meets_floor(spec.training.metric, r["value"], floor):
            continue
        alerts.record(engine, Alert(
            kind=ESTIMATE_ALERT, severity="warning", model_name=spec.name, partition_date=day, dag_id=dag_id,
            run_id=run_id, details={k: v for k, v in r.items() if k != "detail"},
            message=(f"estimated {spec.training.metric} {r['value']:.4f} of version {r['model_version']} on "
                     f"{day} ({r['n']} rows, no labels yet; assumes no concept drift) is below the floor {floor}"),
        ))

"""Performance of the published predictions: realized once the labels arrive, estimated before they do.

- **Realized**: on day D the labels of day E = D - labels.delay_days have arrived, so the predictions
  published for E (and the challenger's shadow predictions) are joined with them and their metrics
  recorded in `performance`, per version and kind ("published", "shadow"); a shadow comparison of E gets
  both sides' metric. A realized `training.metric` on the wrong side of `training.min_score` raises a
  `performance_floor` alert. A multiclass version's metrics come from the published `class_scores` in its
  class order (`ModelVersion.classes`); labelled rows of a class it was not trained on are left out of them,
  counted in the detail (`n_unseen`, `unseen_classes`) and raise an `unseen_class` alert (an event). A
  multiclass challenger's shadow metrics come likewise from the `class_scores` of its shadow rows, in its own
  class order. Its shadow *comparison* with the champion (what promotion after the shadow days reads) judges
  both over the union of their classes, as the gate does (`shadow_class_metrics`, `ml_batch.model.metrics`
  `class_union` and `on_classes`): a row of a class only one model knows counts against the other.
- **Estimated**: day D's published scores go through each version's estimator fitted on its holdout into
  label-free estimates, stored as metrics `estimated_<metric>`: for binary models the score calibration map
  (`ml_batch.monitoring.estimate`: `estimated_roc_auc`, `estimated_accuracy`), for regression models the loss
  model (`ml_batch.monitoring.loss_estimate`: `estimated_mae`, `estimated_rmse`); a multiclass model's is
  unavailable (`estimate.MULTICLASS_UNAVAILABLE`), stored as `estimated_<training.metric>` without a value,
  unreliable, with the reason, so the report and `ml-batch status` say why there is none. Each carries `reliable` and
  `unreliable_reasons` (`ml_batch.monitoring.reliability`: features out of support, scores outside the
  fitted range, an expected positive rate far from the holdout's). A *reliable* estimate on the wrong side
  of the floor raises a `performance_estimate` alert, long before the labels can. An unreliable one raises
  none: its number is not a fact to page anyone on, and what makes it unreliable is alerted where it is
  found (`out_of_support`, `dataset_drift`); nor does it resolve an open estimate alert, since it cannot say
  the condition cleared. When the labels arrive, the realized value and the estimation error are put next to
  the estimate.

**Alerts** name the day, the version, the value and the floor in the metric's direction ("below the floor
0.7" for ROC AUC, "above the ceiling 30.0" for MAE: `ml_batch.model.metrics.floor_phrase`). Their subject is
the metric (`training.metric`), not the version: a model has one floor, so one open alert per model and kind,
and a new version that meets the floor resolves it (an alert per version would stay open forever once that
version is retired). A day that meets the floor resolves the open alert (`ml_batch.ops.alerts.resolve`).

Everything stored goes through `ml_batch.jsonvalues.json_safe` (no NaN, no numpy scalars).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.db.tables import performance, shadow_comparisons, shadow_predictions
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.model.labels import check_one_label_per_row, join_labels
from ml_batch.model.metrics import class_union, evaluate, floor_name, floor_phrase, meets_floor, on_classes
from ml_batch.model.training import labels_of
from ml_batch.monitoring.classes import class_probabilities
from ml_batch.monitoring.estimate import (
    ASSUMPTION,
    ESTIMATED_METRICS,
    ESTIMATED_PREFIX,
    MULTICLASS_UNAVAILABLE,
    calibrate,
    estimate_binary,
    fitted_range,
)
from ml_batch.monitoring.loss_estimate import LOSS_ASSUMPTION, estimate_loss
from ml_batch.monitoring.published import SCORE_COLUMN, VERSION_COLUMN, predictions_table
from ml_batch.monitoring.reliability import assess
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

ESTIMATE_ALERT = "performance_estimate"
"""Alert kind of a reliable estimate on the wrong side of the floor."""
FLOOR_ALERT = "performance_floor"
"""Alert kind of a realized metric on the wrong side of the floor."""
ESTIMATED_LOSSES = ("mae", "rmse")
"""The metrics a regression model's label-free estimate gives."""
UNSEEN_CLASS_ALERT = "unseen_class"
"""Alert kind of a labelled day that carries a class the version was not trained on."""

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
    classes = _version_classes(engine, spec, data)
    records = realized_records(spec, day, data, classes)
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.not_like(f"{ESTIMATED_PREFIX}%")))
        _record_estimation_error(conn, spec, day, records)
        conn.execute(performance.insert(), records)
        _update_shadow_metrics(conn, spec, day, records, shadow_class_metrics(spec, data, classes))
    _alert_on_floor(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    _alert_on_unseen_classes(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def realized_records(spec: Spec, day: dt.date, data: pd.DataFrame,
                     classes: Mapping[int, Sequence[str]] | None = None) -> list[Record]:
    """The `performance` records of labelled predictions (columns model_version, kind, score and the label;
    a multiclass model's also `class_scores`), per version and kind (pure).

    A multiclass version's metrics are computed from its class probabilities (`classes`: each version's class
    names, `ModelVersion.classes`). Labelled rows of a class it was not trained on are left out of them and
    reported in the detail (`n_unseen`, `unseen_classes`: {class: rows}); `n` is the rows evaluated.
    """
    records: list[Record] = []
    for (version, kind), group in data.groupby(["model_version", "kind"]):
        y = labels_of(group, spec)
        detail: dict[str, Any] = {"kind": kind}
        n = len(group)
        if spec.model.task == "multiclass":
            names = list((classes or {}).get(int(version)) or [])
            if not names:
                raise ValueError(f"version {version} of model {spec.name!r} has no class names: cannot compute its "
                                 "realized multiclass metrics (expected `model_versions.classes`)")
            probabilities = class_probabilities(group["class_scores"], names, f"realized performance of {day}")
            metrics = evaluate("multiclass", y, probabilities, classes=names)
            n = int(metrics["n"])
            unseen = pd.Series([label for label in y if label not in set(names)], dtype=object).value_counts()
            detail.update({"labelled": len(group), "n_unseen": int(metrics["n_unseen"]),
                           "unseen_classes": {str(name): int(count) for name, count in unseen.items()}})
            records += _metric_records(spec, day, int(version), metrics, n, detail, skip=("n", "n_unseen"))
            continue
        scores = group["score"].to_numpy(dtype=np.float64)
        metrics = evaluate(spec.model.task, y, scores)
        if spec.model.task == "binary":
            detail["calibration"] = calibration_by_decile(y, scores)
            metrics["calibration_error"] = float(np.average(
                [abs(b["mean_score"] - b["positive_rate"]) for b in detail["calibration"]],
                weights=[b["n"] for b in detail["calibration"]]))
        records += _metric_records(spec, day, int(version), metrics, n, detail, skip=("n",))
    return records


def _metric_records(spec: Spec, day: dt.date, version: int, metrics: Mapping[str, float], n: int,
                    detail: Mapping[str, Any], *, skip: Sequence[str]) -> list[Record]:
    """One `performance` record per metric of a version and kind (the counts in `skip` are no metrics)."""
    stored = json_safe(dict(detail))
    return [{"model_name": spec.name, "model_version": version, "partition_date": day, "metric": metric,
             "value": json_safe(value), "n": n, "detail": stored} for metric, value in metrics.items()
            if metric not in skip]


def estimate_performance(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str | None = None,
                         dag_id: str | None = None, frame: pd.DataFrame | None = None,
                         out_of_support: Sequence[str] = (), raise_alerts: bool = True) -> list[Record]:
    """Label-free estimates of day D's published predictions, per version that scored the day.

    Stored in `performance` (replacing the day's estimates) as `estimated_roc_auc` and `estimated_accuracy`
    (binary) or `estimated_mae` and `estimated_rmse` (regression), detail kind "estimated" with the
    assumption, `reliable` and `unreliable_reasons`. A reliable estimated `training.metric` on the wrong side
    of `training.min_score` raises a `performance_estimate` alert; a reliable one on the right side resolves
    it. Nothing for a version whose profile has no estimator (no calibration map, no loss model).

    Args:
        engine: The ml-batch database.
        spec: The model spec.
        day: The day whose published predictions are estimated.
        run_id: The run that estimates (stored in each record's detail, named in alerts).
        dag_id: The DAG, for alerts.
        frame: The day's published rows as the drift check read them (`published.day_sample`: columns
            `SCORE_COLUMN` and `VERSION_COLUMN` at least), so they are not read twice; None: every published
            score of the day is read from the predictions table.
        out_of_support: The features the day's drift check found out of support: each makes the day's
            estimates unreliable.
        raise_alerts: False to store the estimates without opening or resolving any alert (a CLI recheck).
    """
    scored = _published_scores(engine, spec, day) if frame is None else frame
    records: list[Record] = []
    if not scored.empty:
        for version, group in scored.groupby(VERSION_COLUMN):
            profile = registry.reference_profile(engine, spec.name, int(version)) or {}
            records += estimate_records(spec, day, int(version), group[SCORE_COLUMN].to_numpy(dtype=np.float64),
                                        profile, run_id=run_id, out_of_support=out_of_support)
    with engine.begin() as conn:
        conn.execute(performance.delete().where(performance.c.model_name == spec.name,
                                                performance.c.partition_date == day,
                                                performance.c.metric.like(f"{ESTIMATED_PREFIX}%")))
        if records:
            conn.execute(performance.insert(), records)
    if raise_alerts:
        _alert_on_estimate(engine, spec, day, records, run_id=run_id, dag_id=dag_id)
    return records


def estimate_records(spec: Spec, day: dt.date, version: int, scores: np.ndarray, profile: Mapping[str, Any], *,
                     run_id: str | None, out_of_support: Sequence[str] = ()) -> list[Record]:
    """The `performance` records of one version's label-free estimates of a day (pure).

    Args:
        spec: The model spec.
        day: The day estimated.
        version: The version that scored the rows.
        scores: Its scores (binary) or predictions (regression) of the day.
        profile: The version's reference profile (what `estimate.fit_estimators` stored in it).
        run_id: The run that estimates.
        out_of_support: The features out of support on the day.

    Returns:
        One record per estimated metric, or none when the profile holds no estimator for the task; for a
        multiclass model one record of `training.metric` without a value, unreliable, whose detail says why
        the estimate is unavailable (`MULTICLASS_UNAVAILABLE`).
    """
    if spec.model.task == "multiclass":
        unavailable = {"kind": "estimated", "available": False, "assumption": None, "notes": [MULTICLASS_UNAVAILABLE],
                       "run_id": run_id, "reliable": False, "unreliable_reasons": [MULTICLASS_UNAVAILABLE]}
        return [{"model_name": spec.name, "model_version": version, "partition_date": day,
                 "metric": f"{ESTIMATED_PREFIX}{spec.training.metric}", "value": None, "n": int(np.size(scores)),
                 "detail": json_safe(unavailable)}]
    if spec.model.task == "binary":
        calibration = profile.get("score_calibration")
        if calibration is None:
            logger.info("%s version %s has no score calibration map: no estimate for %s", spec.name, version, day)
            return []
        estimate = estimate_binary(scores, calibrate(calibration, scores), spec.predictions.threshold)
        reliability = assess(scores, fitted_range=fitted_range(calibration), out_of_support=out_of_support,
                             expected_positive_rate=estimate["expected_positive_rate"],
                             holdout_positive_rate=calibration.get("positive_rate"),
                             holdout_day_rates=calibration.get("day_expected_positive_rates") or ())
        metrics: tuple[str, ...] = ESTIMATED_METRICS
        detail: dict[str, Any] = {
            "kind": "estimated", "assumption": ASSUMPTION, "threshold": spec.predictions.threshold,
            "confusion": estimate["confusion"], "expected_positive_rate": estimate["expected_positive_rate"],
            "holdout_positive_rate": calibration.get("positive_rate")}
    else:
        loss_model = profile.get("loss_model")
        if loss_model is None:
            logger.info("%s version %s has no loss model: no estimate for %s", spec.name, version, day)
            return []
        estimate = estimate_loss(loss_model, scores)
        reliability = assess(scores, fitted_range=(loss_model["prediction_min"], loss_model["prediction_max"]),
                             out_of_support=out_of_support, what="predictions")
        metrics = ESTIMATED_LOSSES
        detail = {"kind": "estimated", "assumption": LOSS_ASSUMPTION, "holdout_n": loss_model["n"]}
    detail.update({"notes": estimate["notes"], "run_id": run_id, **reliability.as_detail()})
    stored = json_safe(detail)
    return [{"model_name": spec.name, "model_version": version, "partition_date": day,
             "metric": f"{ESTIMATED_PREFIX}{metric}", "value": json_safe(estimate[metric]),
             "n": estimate["n"], "detail": stored} for metric in metrics]


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


def _published_scores(engine: sa.Engine, spec: Spec, day: dt.date) -> pd.DataFrame:
    """Every published score of the day with its version (columns `VERSION_COLUMN`, `SCORE_COLUMN`)."""
    preds = predictions_table(spec)
    with engine.connect() as conn:
        return pd.read_sql(sa.select(preds.c.model_version.label(VERSION_COLUMN), preds.c.score.label(SCORE_COLUMN))
                           .where(preds.c.partition_date == day), conn)


def _labelled_predictions(engine: sa.Engine, spec: Spec, day: dt.date, as_of: dt.date) -> pd.DataFrame | None:
    """The day's published and shadow predictions joined with their labels (None: no labelled row yet).

    Raises:
        LabelJoinError: If the labels do not join the predictions one to one.
    """
    preds = predictions_table(spec)
    multiclass = spec.model.task == "multiclass"
    published = sa.select(preds.c[spec.source.key].label("k"), preds.c.partition_date.label("day"), preds.c.score,
                          preds.c.model_version, sa.literal("published").label("kind"),
                          *([preds.c.class_scores] if multiclass else [])).where(
        preds.c.partition_date == day)
    # A multiclass challenger's shadow rows carry its own classes' probabilities, read like the published ones.
    shadow = sa.select(shadow_predictions.c.entity_key.label("k"), shadow_predictions.c.partition_date.label("day"),
                       shadow_predictions.c.score, shadow_predictions.c.model_version,
                       sa.literal("shadow").label("kind"),
                       *([shadow_predictions.c.class_scores] if multiclass else [])).where(
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


def _version_classes(engine: sa.Engine, spec: Spec, data: pd.DataFrame) -> dict[int, list[str]]:
    """Each multiclass version's class names (`ModelVersion.classes`); empty for binary and regression models."""
    if spec.model.task != "multiclass":
        return {}
    return {int(v): list(registry.get_version(engine, spec.name, int(v)).classes or [])
            for v in sorted(data["model_version"].unique())}


def _alert_on_unseen_classes(engine: sa.Engine, spec: Spec, day: dt.date, records: list[Record], *,
                             run_id: str | None, dag_id: str | None) -> None:
    """An `unseen_class` alert per version whose labelled rows of the day carry classes it was not trained on
    (left out of its realized metrics, never mapped to another class)."""
    seen: set[int] = set()
    for r in records:
        version, unseen = r["model_version"], r["detail"].get("unseen_classes") or {}
        if not unseen or version in seen:
            continue
        seen.add(version)
        names = ", ".join(f"{name!r} ({count} rows)" for name, count in unseen.items())
        alerts.record(engine, Alert(
            kind=UNSEEN_CLASS_ALERT, severity="warning", model_name=spec.name, partition_date=day,
            subject=f"version {version}", dag_id=dag_id, run_id=run_id,
            details={"model_version": version, "n_unseen": r["detail"]["n_unseen"], "unseen_classes": unseen,
                     "labelled": r["detail"]["labelled"]},
            message=(f"{r['detail']['n_unseen']} of the {r['detail']['labelled']} labelled rows of {day} carry classes "
                     f"version {version} was not trained on: {names}; they are left out of its realized metrics "
                     "(retrain to learn them)")))


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


def shadow_class_metrics(spec: Spec, data: pd.DataFrame, classes: Mapping[int, Sequence[str]]
                         ) -> dict[tuple[int, int], tuple[tuple[float | None, int], tuple[float | None, int]]]:
    """A multiclass model's shadow comparisons: for each (champion, challenger) pair of the day's labelled rows,
    both models' `training.metric` and rows over the union of their classes (`metrics.class_union`,
    `metrics.on_classes`: the gate's rule), each on the rows it scored (pure; {} for binary and regression).

    A row of a class only one of them knows counts against the other, as at the gate, instead of for the one
    alone; a row of a class neither knows is left out of both. A metric undefined on the rows (no row left, one
    class only for roc_auc_ovr) is None, as in the `performance` records: such a day is not labelled evidence.
    """
    if spec.model.task != "multiclass":
        return {}
    metric, sides = spec.training.metric, dict(tuple(data.groupby(["model_version", "kind"])))
    out: dict[tuple[int, int], tuple[tuple[float | None, int], tuple[float | None, int]]] = {}
    for champion in (int(v) for v, kind in sides if kind == "published"):
        for challenger in (int(v) for v, kind in sides if kind == "shadow"):
            union = class_union(classes[champion], classes[challenger])
            values = []
            for version, kind in ((champion, "published"), (challenger, "shadow")):
                rows = sides[(version, kind)]
                found = on_classes(labels_of(rows, spec), class_probabilities(
                    rows["class_scores"], classes[version], f"shadow comparison of {kind} version {version}"),
                    classes[version], union)
                value = found[metric]
                values.append((value if math.isfinite(value) and found["n"] else None, int(found["n"])))
            out[(champion, challenger)] = (values[0], values[1])
    return out


def _update_shadow_metrics(conn: sa.Connection, spec: Spec, day: dt.date, records: list[Record],
                           by_classes: Mapping[tuple[int, int], tuple[tuple[float | None, int],
                                                                      tuple[float | None, int]]]) -> None:
    """Both sides' `training.metric` on each shadow comparison of the day, and the challenger's labelled rows
    (a multiclass model's from `shadow_class_metrics`, over both models' classes)."""
    metric = spec.training.metric
    values = {(r["model_version"], r["detail"]["kind"]): (r["value"], r["n"]) for r in records if r["metric"] == metric}
    rows = conn.execute(sa.select(shadow_comparisons).where(
        shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day)).mappings().all()
    for row in rows:
        champion = values.get((row["champion_version"], "published"))
        challenger = values.get((row["challenger_version"], "shadow"))
        if (row["champion_version"], row["challenger_version"]) in by_classes:
            champion, challenger = by_classes[(row["champion_version"], row["challenger_version"])]
        conn.execute(shadow_comparisons.update().where(
            shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day,
            shadow_comparisons.c.challenger_version == row["challenger_version"],
        ).values(metric=metric, champion_metric=champion[0] if champion else None,
                 challenger_metric=challenger[0] if challenger else None,
                 labelled_n=challenger[1] if challenger else None))


def _alert_on_floor(engine: sa.Engine, spec: Spec, day: dt.date, records: list[Record], *,
                    run_id: str | None, dag_id: str | None) -> None:
    """A `performance_floor` alert per published version whose realized `training.metric` misses the floor;
    when every published version of the day meets it, the open alert is resolved."""
    metric = spec.training.metric
    published = [r for r in records if r["metric"] == metric and r["detail"]["kind"] == "published"
                 and r["value"] is not None]
    _floor_alerts(engine, spec, day, published, kind=FLOOR_ALERT, severity="critical", realized=True,
                  describe=lambda r: f"realized {metric} {r['value']:.4f} of version {r['model_version']} on {day} "
                                     f"({r['n']} labelled rows)", run_id=run_id, dag_id=dag_id)


def _alert_on_estimate(engine: sa.Engine, spec: Spec, day: dt.date, records: list[Record], *,
                       run_id: str | None, dag_id: str | None) -> None:
    """A `performance_estimate` alert per version whose *reliable* estimated `training.metric` misses the
    floor; when the day's reliable estimates all meet it, the open alert is resolved. Unreliable estimates
    neither alert nor resolve."""
    name = spec.training.metric
    reliable = [r for r in records if r["metric"] == f"{ESTIMATED_PREFIX}{name}" and r["value"] is not None
                and r["detail"].get("reliable", True)]
    _floor_alerts(engine, spec, day, reliable, kind=ESTIMATE_ALERT, severity="warning", realized=False,
                  describe=lambda r: f"estimated {name} {r['value']:.4f} of version {r['model_version']} on {day} "
                                     f"({r['n']} rows, no labels yet; assumes no concept drift)",
                  run_id=run_id, dag_id=dag_id)


def _floor_alerts(engine: sa.Engine, spec: Spec, day: dt.date, candidates: list[Record], *, kind: str,
                  severity: str, realized: bool, describe: Callable[[Record], str], run_id: str | None,
                  dag_id: str | None) -> None:
    """The one floor rule of realized and estimated metrics: an alert of `kind` per candidate that misses
    `training.min_score` (worded in the metric's direction), or, when every candidate meets it, the open
    alert resolved. Nothing without a floor or without candidates."""
    floor = spec.training.min_score
    metric = spec.training.metric
    if floor is None:
        return
    missed = [r for r in candidates if not meets_floor(metric, r["value"], floor)]
    for r in missed:
        alerts.record(engine, Alert(
            kind=kind, severity=severity, model_name=spec.name, partition_date=day, subject=metric,
            dag_id=dag_id, run_id=run_id, details={k: v for k, v in r.items() if k != "detail"},
            message=f"{describe(r)} is {floor_phrase(metric, floor)}"))
    if candidates and not missed:
        _resolve(engine, spec, kind, day, candidates, realized=realized, run_id=run_id, dag_id=dag_id)


def _resolve(engine: sa.Engine, spec: Spec, kind: str, day: dt.date, met: list[Record], *, realized: bool,
             run_id: str | None, dag_id: str | None) -> None:
    """Resolve the open floor alert of `kind`, saying which value of the day met the floor."""
    metric = spec.training.metric
    values = ", ".join(f"{r['value']:.4f} (version {r['model_version']})" for r in met)
    alerts.resolve(engine, model=spec.name, kind=kind, day=day, subject=metric, run_id=run_id, dag_id=dag_id,
                   message=(f"{'realized' if realized else 'estimated'} {metric} on {day} is back within the "
                            f"{floor_name(metric)} {spec.training.min_score}: {values}"))

"""Per-run metrics of ml-batch, sent through Airflow's metrics interface (`airflow.sdk.observability.stats`).

Where they go is Airflow's configuration, not ml-batch's: `[metrics] statsd_on` (StatsD; needs the `statsd`
package), `statsd_datadog_enabled` or `otel_on`, with `statsd_prefix` (default `airflow`) in front of every
name. Airflow's task runner sets the backend up before a task body runs; without any of those options, or
outside a task process, every call here does nothing.

Names (`<model>` is the spec's name; gauges unless noted; tags `model` and `version` for backends with tags):

| name | from | value |
|---|---|---|
| `ml_batch.<model>.rows_extracted` / `rows_scored` / `rows_quarantined` | publish | rows of the run |
| `ml_batch.<model>.score_mean` | publish | mean score of the published rows |
| `ml_batch.<model>.stage.<stage>` (timer, ms) | publish | `validate`, `extract`, `score`, `write`, `publish` |
| `ml_batch.<model>.runs.<status>` (counter) | publish | one per published run: `success` or `dry_run` |
| `ml_batch.<model>.drift_share` | drift | share of drifted features of the day |
| `ml_batch.<model>.drifted_features` | drift | count of drifted features |
| `ml_batch.<model>.dataset_drift` | drift | 1 when the day drifted, else 0 |
| `ml_batch.<model>.out_of_support` | drift | count of features out of support on the day |
| `ml_batch.<model>.multivariate_drift` | drift | 1 when the day's multivariate statistic drifted, else 0 |
| `ml_batch.<model>.estimated_<metric>` | drift | label-free estimate of the metric |
| `ml_batch.<model>.estimate_reliable` | drift | 1 when the day's estimate can be trusted, 0 when not |
| `ml_batch.<model>.realized_<metric>` | performance | realized metric of the labelled day (tag `version`) |

Each function takes the plain summary a task of the daily DAG already returns and emits nothing for a
missing value (a dry or skipped step), so a metrics outage or a partial summary never fails a run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

PREFIX = "ml_batch"


def metric_name(model: str, *parts: str) -> str:
    """`ml_batch.<model>.<part>...`, each part made safe for StatsD (Airflow's own normalisation)."""
    from airflow.sdk.observability.stats import normalize_name_for_stats

    return ".".join(normalize_name_for_stats(str(p), log_warning=False) for p in (PREFIX, model, *parts))


def publish_metrics(summary: Mapping[str, Any]) -> list[str]:
    """Rows, score mean, stage durations and the run's outcome, from `publish_run(...).as_dict()`."""
    from airflow.sdk.observability import stats

    model = str(summary["model"])
    tags = _tags(model, summary.get("version"))
    sent = []
    for key, name in (("extracted", "rows_extracted"), ("scored", "rows_scored"),
                      ("quarantined", "rows_quarantined"), ("score_mean", "score_mean")):
        sent += _gauge(metric_name(model, name), summary.get(key), tags)
    for stage, seconds in (summary.get("stage_seconds") or {}).items():
        if _number(seconds) is not None:
            name = metric_name(model, "stage", stage)
            stats.timing(name, float(seconds) * 1000.0, tags=tags)
            sent.append(name)
    if summary.get("status"):
        name = metric_name(model, "runs", str(summary["status"]))
        stats.incr(name, tags=tags)
        sent.append(name)
    return sent


def drift_metrics(summary: Mapping[str, Any]) -> list[str]:
    """Drift share, drifted-feature count, the verdict, out of support, multivariate drift and the label-free
    estimates with their reliability, from
    `check_day_drift(...)`; nothing for a skipped check."""
    if summary.get("status") != "checked":
        return []
    model = str(summary["model"])
    tags = _tags(model, summary.get("version"))
    drifted = summary.get("drifted_features")
    sent = _gauge(metric_name(model, "drift_share"), summary.get("share"), tags)
    sent += _gauge(metric_name(model, "drifted_features"), len(drifted) if drifted is not None else None, tags)
    sent += _gauge(metric_name(model, "dataset_drift"), int(bool(summary.get("dataset_drift"))), tags)
    outside = summary.get("out_of_support")
    sent += _gauge(metric_name(model, "out_of_support"), len(outside) if outside is not None else None, tags)
    sent += _gauge(metric_name(model, "multivariate_drift"), summary.get("multivariate_drift"), tags)
    sent += _gauge(metric_name(model, "estimate_reliable"), summary.get("estimate_reliable"), tags)
    for metric, value in (summary.get("estimated") or {}).items():  # keyed `estimated_<metric>` already
        name = metric if str(metric).startswith("estimated_") else f"estimated_{metric}"
        sent += _gauge(metric_name(model, name), value, tags)
    return sent


def performance_metrics(model: str, records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Realized metrics, from the performance task's records (one per version that scored the day)."""
    sent = []
    for record in records:
        sent += _gauge(metric_name(model, f"realized_{record['metric']}"), record.get("value"),
                       _tags(model, record.get("model_version")))
    return sent


def _gauge(name: str, value: Any, tags: dict[str, str]) -> list[str]:
    from airflow.sdk.observability import stats

    number = _number(value)
    if number is None:
        return []
    stats.gauge(name, number, tags=tags)
    return [name]


def _number(value: Any) -> float | None:
    """A finite number, else None (None, NaN and infinity are not sent)."""
    if value is None or isinstance(value, bool | str):
        return None if not isinstance(value, bool) else float(value)
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None


def _tags(model: str, version: Any) -> dict[str, str]:
    return {"model": model, **({"version": str(version)} if version is not None else {})}

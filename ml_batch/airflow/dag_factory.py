"""Build the daily `batch_predict_<model>` DAG from a spec. Imported only by DAG files.

Parse-time cost: this module and the spec YAML files; no database, no pandas/sklearn/GX import.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, task

from ml_batch.airflow import tasks
from ml_batch.spec import Spec

DAG_DOC = """
### Daily batch predictions: `{model}`

{description}

**Day D** is the UTC day this run scores: rows with `D <= {date_column} < D+1` of `{source}`.
It is the `date` param when given; else the start of the run's data interval (the run that fires on
D+1 at `{schedule}` covers [D, D+1)); else, for a manual run without a logical date, yesterday (UTC).

Steps: **plan** (resolve D, pin the champion version once) → **score** (one mapped task per shard:
extract, validate with Great Expectations, quarantine failing rows, score, stage) → **publish**
(audit the staging table, swap the day's partition of `{predictions}` in one transaction).
Re-running a day replaces it; a dry run publishes nothing.
"""


def predictions_asset(spec: Spec) -> Asset:
    """The Asset whose events mark a published day of `spec`'s predictions."""
    return Asset(name=f"ml_batch.predictions.{spec.name}", uri=f"ml-batch://predictions/{spec.name}")


def _params() -> dict[str, Param]:
    return {
        "date": Param(None, type=["null", "string"], format="date", title="Day to score (UTC)",
                      description="YYYY-MM-DD. Empty: the run's data interval start (yesterday for a manual run)."),
        "version": Param(None, type=["null", "integer"], minimum=1, title="Model version",
                         description="Score with this registered version. Empty: see version_policy."),
        "version_policy": Param("champion", type="string", enum=["champion", "champion_on_day"],
                                title="Which version when none is given",
                                description="champion: the current champion. champion_on_day: the version that "
                                            "was champion at the end of the day (for faithful backfills)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Validate and score, publish nothing."),
        "shards": Param(1, type="integer", minimum=1, maximum=64, title="Shards",
                        description="Split the day into this many mapped scoring tasks."),
    }


def build_dag(spec: Spec, *, doc_md: str | None = None) -> DAG:
    """The daily batch-prediction DAG of one model."""
    model = spec.name
    asset = predictions_asset(spec)
    doc = doc_md or DAG_DOC.format(
        model=model, description=spec.description, date_column=spec.source.date_column,
        source=spec.source.table or "the spec's query", schedule=spec.schedule, predictions=spec.predictions.table,
    )
    default_args: dict[str, Any] = {
        "owner": spec.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
    }
    with DAG(
        dag_id=f"batch_predict_{model}",
        doc_md=doc,
        schedule=CronDataIntervalTimetable(spec.schedule, timezone="UTC"),
        start_date=pendulum.datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tz="UTC"),
        catchup=False,
        # Days are independent (per-run staging, per-day publish lock), so backfills may run days in parallel.
        max_active_runs=spec.max_active_runs,
        default_args=default_args,
        params=_params(),
        tags=["ml-batch", "batch-predict", model],
    ) as dag:

        @task(task_id="plan")
        def plan(**context: Any) -> dict[str, Any]:
            return tasks.plan(model, context)

        @task(task_id="list_shards")
        def list_shards(run_plan: dict[str, Any]) -> list[int]:
            return tasks.shards(run_plan)

        @task(task_id="score", max_active_tis_per_dagrun=8)
        def score(run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
            return tasks.score(model, run_plan, shard)

        @task(task_id="publish", outlets=[asset])
        def publish(run_plan: dict[str, Any], results: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
            return tasks.publish(model, run_plan, context, asset)

        run_plan = plan()
        scored = score.partial(run_plan=run_plan).expand(shard=list_shards(run_plan))
        publish(run_plan, scored)
    return dag

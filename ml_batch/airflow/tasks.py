"""Task bodies of the daily DAG: each turns the Airflow context into plain values and makes one call
into `ml_batch.scoring`. Nothing here decides anything a test of `ml_batch.scoring` does not cover."""

from __future__ import annotations

import logging
from typing import Any

from ml_batch.partition import resolve_day, run_type_of
from ml_batch.spec import Spec, get_spec

logger = logging.getLogger(__name__)


def _spec(model: str) -> tuple[Spec, Any, Any]:
    # Imported here, not at module level: DAG files import this module, and parsing must stay light.
    from ml_batch.airflow.runtime import task_engine, task_settings

    settings = task_settings()
    return get_spec(settings.specs_dir, model), settings, task_engine(settings)


def plan(model: str, context: dict[str, Any]) -> dict[str, Any]:
    """Resolve day D and pin the model version once for the whole run; prepare staging."""
    from ml_batch.scoring import plan_run

    spec, _, engine = _spec(model)
    params = context.get("params") or {}
    dag_run = context["dag_run"]
    day = resolve_day(params.get("date"), context.get("data_interval_start"), getattr(dag_run, "run_after", None))
    run_plan = plan_run(
        engine, spec, day,
        run_id=str(context["run_id"]),
        run_type=run_type_of(str(getattr(dag_run, "run_type", "manual"))),
        version=params.get("version"),
        version_policy=params.get("version_policy") or "champion",
        dry_run=bool(params.get("dry_run")),
        shards=int(params.get("shards") or 1),
    )
    logger.info("run %s scores %s day %s with version %d", run_plan.run_id, model, day, run_plan.version)
    return run_plan.as_dict()


def shards(run_plan: dict[str, Any]) -> list[int]:
    return list(range(int(run_plan["shards"])))


def score(model: str, run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
    """Score one shard of the day into the run's staging table."""
    from ml_batch.scoring import RunPlan, score_shard
    from ml_batch.validation import suite_path

    spec, settings, engine = _spec(model)
    result = score_shard(engine, spec, RunPlan.from_dict(run_plan), shard,
                         suite_file=suite_path(spec, settings.specs_dir),
                         results_dir=settings.home / "validation")
    return result.__dict__


def publish(model: str, run_plan: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    """Audit and publish the day atomically; record an Asset event describing what was published."""
    from ml_batch.scoring import RunPlan, publish_run

    spec, _, engine = _spec(model)
    summary = publish_run(engine, spec, RunPlan.from_dict(run_plan)).as_dict()
    outlet_events = context.get("outlet_events")
    if outlet_events is not None and summary["status"] == "success":
        outlet_events[asset].extra = {k: summary[k] for k in ("model", "day", "version", "scored", "quarantined")}
    return summary

"""Task bodies of the daily DAG: each turns the Airflow context into plain values and makes one call
into `ml_batch.scoring`. Nothing here decides anything a test of `ml_batch.scoring` does not cover.

Every body that calls into ml-batch is wrapped in `fail_fast`: a deterministic failure (see
`ml_batch.errors`) fails the task at once instead of being retried on the same inputs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from ml_batch.errors import is_deterministic
from ml_batch.partition import resolve_day, run_type_of
from ml_batch.spec import Spec, get_spec

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


def fail_fast(body: Callable[P, R]) -> Callable[P, R]:
    """Run a task body; a deterministic ml-batch failure fails the task without its retries.

    Which failures are deterministic is decided in `ml_batch.errors` (`MlBatchError.deterministic`), not
    here. They are re-raised as Airflow's `AirflowFailException` with the same message, chained to the
    original (`__cause__`), so the task log keeps the real traceback. Anything else (an unreachable
    database, a lock timeout, an unexpected exception) propagates unchanged and Airflow retries it.
    """

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except Exception as exc:
            if not is_deterministic(exc):
                raise
            # Imported on failure only: DAG files import this module and parsing must stay light.
            from airflow.sdk.exceptions import AirflowFailException

            logger.error("%s failed with %s, which a retry cannot fix: failing the task without retries",
                         body.__name__, type(exc).__name__)
            raise AirflowFailException(f"{exc} ({type(exc).__name__}: deterministic, not retried)") from exc

    return run


def _spec(model: str) -> tuple[Spec, Any, Any]:
    # Imported here, not at module level: DAG files import this module, and parsing must stay light.
    from ml_batch.airflow.runtime import task_engine, task_settings

    settings = task_settings()
    return get_spec(settings.specs_dir, model), settings, task_engine(settings)


@fail_fast
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
        shards=int(params["shards"]) if params.get("shards") else None,
    )
    logger.info("run %s scores %s day %s with version %d", run_plan.run_id, model, day, run_plan.version)
    return run_plan.as_dict()


def shards(run_plan: dict[str, Any]) -> list[int]:
    return list(range(int(run_plan["shards"])))


@fail_fast
def score(model: str, run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
    """Score one shard of the day into the run's staging table."""
    from ml_batch.scoring import RunPlan, score_shard
    from ml_batch.validation import suite_path

    spec, settings, engine = _spec(model)
    result = score_shard(engine, spec, RunPlan.from_dict(run_plan), shard,
                         suite_file=suite_path(spec, settings.specs_dir),
                         results_dir=settings.home / "validation")
    return result.__dict__


@fail_fast
def publish(model: str, run_plan: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    """Audit and publish the day atomically; record an Asset event describing what was published."""
    from ml_batch.scoring import RunPlan, publish_run

    spec, _, engine = _spec(model)
    summary = publish_run(engine, spec, RunPlan.from_dict(run_plan)).as_dict()
    outlet_events = context.get("outlet_events")
    if outlet_events is not None and summary["status"] == "success":
        outlet_events[asset].extra = {k: summary[k] for k in ("model", "day", "version", "scored", "quarantined")}
    return summary


@fail_fast
def drift(model: str, run_plan: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Drift of the day just published against the scoring version's reference profile, and the label-free
    performance estimate of its predictions (binary models)."""
    from ml_batch.monitoring import check_day_drift
    from ml_batch.scoring import RunPlan

    spec, settings, engine = _spec(model)
    plan_ = RunPlan.from_dict(run_plan)
    if plan_.dry_run:
        return {"status": "skipped", "reason": "dry run", "dataset_drift": False, "sustained_drift": False}
    return check_day_drift(engine, spec, plan_.day, run_id=plan_.run_id, report_dir=settings.home / "drift",
                           dag_id=dag_id)


def signal_drift(summary: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    """Attach the drift summary to the drift Asset event (which triggers the retraining DAG); the DAG emits it
    only on sustained drift (`drift.alert_after`)."""
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        outlet_events[asset].extra = {k: summary.get(k) for k in ("model", "day", "version", "share",
                                                                 "drifted_features", "window_days",
                                                                 "drifted_days")}
    return summary


@fail_fast
def shadow(model: str, run_plan: dict[str, Any]) -> dict[str, Any] | None:
    """Score the published day with the challenger (if any) into the shadow table."""
    from ml_batch.monitoring import shadow_score
    from ml_batch.scoring import RunPlan

    spec, _, engine = _spec(model)
    plan_ = RunPlan.from_dict(run_plan)
    if plan_.dry_run:
        return None
    return shadow_score(engine, spec, plan_.day, run_id=plan_.run_id)


@fail_fast
def performance(model: str, run_plan: dict[str, Any], dag_id: str) -> list[dict[str, Any]]:
    """Realized metrics of the day whose labels have now arrived (D - labels.delay_days)."""
    from ml_batch.monitoring import realized_performance
    from ml_batch.scoring import RunPlan

    spec, _, engine = _spec(model)
    plan_ = RunPlan.from_dict(run_plan)
    records = realized_performance(engine, spec, plan_.day, run_id=plan_.run_id, dag_id=dag_id)
    return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items() if k != "detail"}
            for r in records if r["metric"] == spec.training.metric]


def retrain_mode(context: dict[str, Any]) -> str:
    """`rollback` when the operator asked for it, else `train`."""
    return "rollback" if (context.get("params") or {}).get("rollback") else "train"


@fail_fast
def rollback(model: str, context: dict[str, Any]) -> dict[str, Any]:
    """Move the champion back to the previous one (audited, alerted)."""
    from ml_batch import alerts, registry
    from ml_batch.alerts import Alert

    _, _, engine = _spec(model)
    reason = (context.get("params") or {}).get("reason") or "rollback requested from the retraining DAG"
    move = registry.rollback(engine, model, actor=f"airflow:{context['run_id']}", reason=reason)
    alerts.record(engine, Alert(
        kind="rollback", severity="warning", model_name=model, run_id=str(context["run_id"]),
        message=f"champion rolled back from {move.from_version} to {move.to_version}: {reason}",
    ))
    return move.__dict__


@fail_fast
def train_and_gate(model: str, context: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Promote a challenger whose shadow period is over; then train a candidate and run the gate."""
    from ml_batch.jobs import promote_after_shadow, train_and_register

    spec, _, engine = _spec(model)
    params = context.get("params") or {}
    dag_run = context["dag_run"]
    as_of = resolve_day(params.get("as_of"), None, getattr(dag_run, "run_after", None))
    run_id = str(context["run_id"])
    actor = f"airflow:{run_id}"
    # Both calls know the run: a retry of this task reuses what an earlier try of the run decided/registered.
    shadow_outcome = promote_after_shadow(engine, spec, actor=actor, dag_id=dag_id, run_id=run_id)
    outcome = train_and_register(engine, spec, as_of, actor=actor, promote=True, dag_id=dag_id, run_id=run_id)
    result = {**outcome.as_dict(), "as_of": as_of.isoformat(), "shadow_promotion": shadow_outcome}
    decision = outcome.decision
    if decision is not None:
        logger.info("gate for %s version %d: %s (candidate %s %.4f, champion %s)", model, outcome.version.version,
                    outcome.action, decision.metric, decision.candidate_score, decision.champion_score)
    return result

"""Task bodies of the daily and retraining DAGs: each turns the Airflow context into plain values and makes one
call into `ml_batch`. Nothing here decides anything a test of `ml_batch.run` or `ml_batch.promotion` does not
cover.

A task pays only for what it uses: no migration (a one-query schema-version check instead, see
`ml_batch.airflow.runtime.task_engine`), no module it does not call (heavy ones are imported inside the body
that needs them), and no specs folder after the plan: `plan` pins the model's spec (`ml_batch.run.plan.RunPlan`
carries its text and sha256, recorded on the run) and later tasks parse that copy. The specs folder is the one
the DAG file was built from (`ml_batch.config.specs_dir`), handed to the bodies by the DAG factory: parsing and
the plan task always read the same folder.

`plan` returns the shard numbers, which `score` maps over; the run plan itself is its XCom `run_plan`
(Airflow sizes a mapping by the task's return value, so the two cannot share one XCom). Step results travel as
`to_xcom()` JSON and are read back with `from_xcom()`.

Every body that calls into ml-batch is wrapped in `fail_fast`: a deterministic failure (see
`ml_batch.errors`) fails the task at once instead of being retried on the same inputs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ml_batch.airflow import stats
from ml_batch.run.partition import resolve_day  # the retraining DAG's as-of day

if TYPE_CHECKING:

    import sqlalchemy as sa

    from ml_batch.config import Settings
    from ml_batch.run.plan import RunPlan

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

#: The XCom key of the run plan (the plan task's return value is the list of shard numbers).
RUN_PLAN_KEY = "run_plan"


def fail_fast(body: Callable[P, R]) -> Callable[P, R]:
    """Run a task body; a deterministic ml-batch failure fails the task without its retries.

    Which failures are deterministic is decided by `ml_batch.db.faults.is_deterministic_failure` (the error's
    class, `MlBatchError.deterministic`, unless it wraps a database fault, which is transient), not here.
    They are re-raised as Airflow's `AirflowFailException` with the same message, chained to the
    original (`__cause__`), so the task log keeps the real traceback. Anything else (an unreachable
    database, a lock timeout, an unexpected exception) propagates unchanged and Airflow retries it.
    """

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except Exception as exc:
            from ml_batch.db.faults import is_deterministic_failure  # on failure only: parsing stays light

            if not is_deterministic_failure(exc):
                raise
            # Imported on failure only: DAG files import this module and parsing must stay light.
            from airflow.sdk.exceptions import AirflowFailException

            logger.error("%s failed with %s, which a retry cannot fix: failing the task without retries",
                         body.__name__, type(exc).__name__)
            raise AirflowFailException(f"{exc} ({type(exc).__name__}: deterministic, not retried)") from exc

    return run


def _settings_and_engine() -> tuple[Settings, sa.Engine]:
    """The running task's settings and engine; its alert channels registered first (an alert raised by the task
    is delivered before, and whether or not, it is recorded in the database)."""
    # Imported here, not at module level: DAG files import this module, and parsing must stay light.
    from ml_batch.airflow.notifiers import register_channels
    from ml_batch.airflow.runtime import task_engine, task_settings

    register_channels()
    settings = task_settings()
    return settings, task_engine(settings)


def _plan(run_plan: dict[str, Any]) -> RunPlan:
    """The run plan back from its XCom (its spec is the pinned copy, never re-read from the folder)."""
    from ml_batch.run.plan import RunPlan

    return RunPlan.from_xcom(run_plan)


def _hand_out(context: dict[str, Any], plan: RunPlan) -> list[int]:
    """Push the run plan as XCom `run_plan`; return the shard numbers `score` maps over."""
    context["ti"].xcom_push(RUN_PLAN_KEY, plan.to_xcom())
    return list(range(plan.shards))


@fail_fast
def plan(model: str, context: dict[str, Any], specs_dir: Path, dag_id: str) -> list[int]:
    """Resolve day D, pin the model version and the spec once for the whole run; prepare staging. A day the
    completeness checks refuse is looked at again later (the task reschedules itself, holding no worker slot)
    until `validation.wait_for_volume` has passed; then the task fails without retries, with an alert."""
    from ml_batch.airflow.runtime import run_day
    from ml_batch.errors import DayIncomplete
    from ml_batch.run.plan import plan_run
    from ml_batch.spec_folder import read_spec

    _, engine = _settings_and_engine()
    params = context.get("params") or {}
    day, run_id, run_type = run_day(context)
    pinned = read_spec(specs_dir, model)
    try:
        run_plan = plan_run(
            engine, pinned, day,
            run_id=run_id,
            run_type=run_type,
            version=params.get("version"),
            version_policy=params.get("version_policy") or "champion",
            dry_run=bool(params.get("dry_run")),
            shards=int(params["shards"]) if params.get("shards") else None,
            allow_partial=bool(params.get("allow_partial")),
        )
    except DayIncomplete as refusal:
        waited = _wait_for_day(context, pinned.spec, run_type, refusal)
        from ml_batch.run.completeness import after_waiting

        # Fails the task without retries; its failure callback alerts `incomplete_day` (see notifiers).
        raise after_waiting(pinned.spec, refusal, waited=waited) from refusal
    return _hand_out(context, run_plan)


def _wait_for_day(context: dict[str, Any], spec: Any, run_type: str, refusal: Any) -> bool:
    """Reschedule the plan task to look at the day again (`completeness.next_check`) if it should still wait;
    else return whether it has been waiting."""
    import datetime as dt

    from airflow.sdk.exceptions import AirflowRescheduleException

    from ml_batch.run.completeness import next_check

    if not refusal.waitable:
        return False
    now = dt.datetime.now(dt.UTC)
    earlier = context["ti"].get_first_reschedule_date(context)
    first = earlier or now
    when = next_check(spec, first_check=first, now=now, run_type=run_type)
    if when is not None:
        logger.warning("%s; looking at the day again at %s (waiting since %s, at most %s)", refusal,
                       when.isoformat(timespec="seconds"), first.isoformat(timespec="seconds"),
                       spec.validation.wait_for_volume)
        raise AirflowRescheduleException(reschedule_date=when)
    return earlier is not None


@fail_fast
def score(model: str, run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
    """Score one shard of the day into the run's staging table."""
    from ml_batch.run.shard import score_shard

    settings, engine = _settings_and_engine()
    return score_shard(engine, _plan(run_plan), shard, results_dir=settings.home / "validation").to_xcom()


@fail_fast
def publish(model: str, run_plan: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    """Audit and publish the day atomically; record an Asset event describing what was published. The alerts
    the published day answers are settled (`ml_batch.monitoring.settled`: `incomplete_day`, `late`)."""
    import datetime as dt

    from ml_batch.monitoring.settled import settle_published_day
    from ml_batch.run.publish import publish_run

    _, engine = _settings_and_engine()
    plan_ = _plan(run_plan)
    published = publish_run(engine, plan_)
    summary = published.to_xcom()
    stats.publish_metrics(summary)
    settle_published_day(engine, plan_.spec, published, dt.datetime.now(dt.UTC),
                         dag_id=getattr(context.get("dag"), "dag_id", None))
    outlet_events = context.get("outlet_events")
    if outlet_events is not None and summary["status"] == "success":
        outlet_events[asset].extra = {k: summary[k] for k in ("model", "day", "version", "scored", "quarantined")}
    return summary


@fail_fast
def drift(model: str, run_plan: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Drift of the day just published against the scoring version's reference profile, and the label-free
    performance estimates of its predictions, with their reliability."""
    from ml_batch.monitoring.daily import DayDrift, check_day_drift

    plan_ = _plan(run_plan)
    if plan_.dry_run:
        return DayDrift(status="skipped", reason="dry run").to_xcom()
    settings, engine = _settings_and_engine()
    summary = check_day_drift(engine, plan_.spec, plan_.day, run_id=plan_.run_id,
                              report_dir=settings.home / "drift", dag_id=dag_id).to_xcom()
    stats.drift_metrics(summary)
    return summary


def signal_drift(summary: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    """On sustained drift (`drift.alert_after`), emit the drift Asset event (which triggers the retraining DAG)
    with the drift summary; on any other day skip the task, which emits nothing."""
    if not summary.get("sustained_drift"):
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException("no sustained dataset drift: nothing to signal")
    outlet_events = context.get("outlet_events")
    if outlet_events is not None:
        outlet_events[asset].extra = {k: summary.get(k) for k in ("model", "day", "version", "share",
                                                                 "drifted_features", "window_days",
                                                                 "drifted_days")}
    return summary


@fail_fast
def reconcile(model: str, run_plan: dict[str, Any], dag_id: str) -> dict[str, Any]:
    """Re-score the last `validation.reconcile_days` published days before D whose source rows changed since
    they were published (`ml_batch.run.reconcile`); the task fails, after every day was tried, when a
    re-score failed (the failed days are in its log and their `late_rows` alerts)."""
    import datetime as dt

    plan_ = _plan(run_plan)
    if plan_.dry_run or plan_.spec.validation.reconcile_days == 0:
        return {"status": "skipped", "reason": "dry run" if plan_.dry_run else "validation.reconcile_days is 0"}
    from ml_batch.run.reconcile import reconcile as reconcile_days

    settings, engine = _settings_and_engine()
    report = reconcile_days(engine, plan_.pinned, through=plan_.day - dt.timedelta(days=1),
                            results_dir=settings.home / "validation", actor=dag_id)
    for entry in report.days:
        if entry.changes:
            logger.warning("day %s changed (%s): %s%s", entry.day, ", ".join(entry.changes), entry.status,
                           f" ({entry.error})" if entry.error else f" by run {entry.run_id}")
    report.raise_if_failed()
    return report.to_xcom()


@fail_fast
def shadow(model: str, run_plan: dict[str, Any]) -> dict[str, Any]:
    """Score the published day with the challenger (if any) into the shadow table."""
    from ml_batch.model import registry

    plan_ = _plan(run_plan)
    if plan_.dry_run:
        return {"status": "skipped", "reason": "dry run"}
    _, engine = _settings_and_engine()
    # Most days there is no challenger: one alias query then spares importing monitoring (pandas, sklearn).
    # Always a value: a task returning None has no XCom, and whatever reads it logs `XCom not found`.
    skipped = {"status": "skipped", "reason": "no challenger"}
    if registry.CHALLENGER not in registry.aliases(engine, model):
        return skipped
    from ml_batch.monitoring.shadow import shadow_score

    return shadow_score(engine, plan_.spec, plan_.day, run_id=plan_.run_id) or skipped


@fail_fast
def performance(model: str, run_plan: dict[str, Any], dag_id: str) -> list[dict[str, Any]]:
    """Realized metrics of the day whose labels have now arrived (D - labels.delay_days)."""
    from ml_batch.monitoring.performance import realized_performance

    plan_ = _plan(run_plan)
    _, engine = _settings_and_engine()
    records = realized_performance(engine, plan_.spec, plan_.day, run_id=plan_.run_id, dag_id=dag_id)
    result = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items() if k != "detail"}
              for r in records if r["metric"] == plan_.spec.training.metric]
    stats.performance_metrics(model, result)
    return result


def retrain_mode(context: dict[str, Any]) -> str:
    """`rollback` when the operator asked for it, else `train`."""
    return "rollback" if (context.get("params") or {}).get("rollback") else "train"


@fail_fast
def rollback(model: str, context: dict[str, Any]) -> dict[str, Any]:
    """Move the champion back to the previous one (audited, alerted)."""
    from ml_batch.model import registry
    from ml_batch.ops import alerts
    from ml_batch.ops.alerts import Alert

    _, engine = _settings_and_engine()
    reason = (context.get("params") or {}).get("reason") or "rollback requested from the retraining DAG"
    move = registry.rollback(engine, model, actor=f"airflow:{context['run_id']}", reason=reason)
    alerts.record(engine, Alert(
        kind="rollback", severity="warning", model_name=model, run_id=str(context["run_id"]),
        message=f"champion rolled back from {move.from_version} to {move.to_version}: {reason}",
    ))
    return move.__dict__


@fail_fast
def train_and_gate(model: str, context: dict[str, Any], dag_id: str, specs_dir: Path) -> dict[str, Any]:
    """Promote a challenger whose shadow period is over; then train a candidate and run the gate."""
    from ml_batch.promotion.retrain import train_and_register
    from ml_batch.promotion.shadow import promote_after_shadow
    from ml_batch.run.plan import check_day
    from ml_batch.spec_folder import read_spec

    _, engine = _settings_and_engine()
    pinned = read_spec(specs_dir, model)
    spec = pinned.spec
    params = context.get("params") or {}
    dag_run = context["dag_run"]
    as_of = check_day(resolve_day(params.get("as_of"), None, getattr(dag_run, "run_after", None)), "param as_of")
    run_id = str(context["run_id"])
    actor = f"airflow:{run_id}"
    # Both calls know the run: a retry of this task reuses what an earlier try of the run decided/registered.
    shadow_outcome = promote_after_shadow(engine, spec, actor=actor, dag_id=dag_id, run_id=run_id)
    outcome = train_and_register(engine, spec, as_of, actor=actor, promote=True, dag_id=dag_id, run_id=run_id,
                                 spec_file=pinned.path)
    result = {**outcome.as_dict(), "as_of": as_of.isoformat(),
              "shadow_promotion": shadow_outcome.as_dict() if shadow_outcome is not None else None}
    decision = outcome.decision
    if decision is not None:
        logger.info("gate for %s version %d: %s (candidate %s %.4f, champion %s)", model, outcome.version.version,
                    outcome.action, decision.metric, decision.candidate_score, decision.champion_score)
    return result


@fail_fast
def open_approval(model: str, train_result: dict[str, Any], context: dict[str, Any],
                  specs_dir: Path) -> dict[str, Any] | None:
    """The approval request of a candidate awaiting approval (its `approval_requested` event and alert
    recorded), with the subject and body the approver reads; None (the approval tasks are skipped) otherwise."""
    from ml_batch.promotion.approval import open_request, request_of
    from ml_batch.spec_folder import read_spec

    request = request_of(model, train_result)
    if request is None:
        return None
    _, engine = _settings_and_engine()
    open_request(engine, read_spec(specs_dir, model).spec, request, actor=f"airflow:{context['run_id']}")
    return {**request.as_dict(), "subject": request.subject(), "body": request.body()}


@fail_fast
def decide_approval(model: str, request: dict[str, Any], response: dict[str, Any], specs_dir: Path) -> dict[str, Any]:
    """Apply the approver's answer (or the timeout's Reject) to the candidate of `request`."""
    from ml_batch.promotion.approval import ApprovalRequest, ApprovalResponse, decide
    from ml_batch.spec_folder import read_spec

    _, engine = _settings_and_engine()
    decision = decide(engine, read_spec(specs_dir, model).spec, ApprovalRequest.from_dict(request),
                      ApprovalResponse.of_hitl(response))
    return decision.as_dict()


@fail_fast
def check_publish_deadline(model: str, context: dict[str, Any], specs_dir: Path) -> dict[str, Any]:
    """Raise, keep or resolve the model's `late` alert: is the day due by `publish_by` published now?"""
    import datetime as dt

    from ml_batch.monitoring.late import check_late
    from ml_batch.spec_folder import read_spec

    _, engine = _settings_and_engine()
    spec = read_spec(specs_dir, model).spec
    dag = context.get("dag")
    found = check_late(engine, spec, dt.datetime.now(dt.UTC), dag_id=getattr(dag, "dag_id", None),
                       run_id=str(context["run_id"]))
    return {"model": model, "state": found.state, "alert_id": found.alert_id,
            "day": found.due.day.isoformat() if found.due else None,
            "deadline": found.due.deadline.isoformat() if found.due else None}


# --- the daily DAG's bodies, real and no-op ----------------------------------------------------------------


@dataclass(frozen=True)
class Bodies:
    """What each task of the daily DAG runs; `dag_factory.build_dag` wires one set into the DAG's shape."""

    plan: Callable[[str, dict[str, Any], Path, str], list[int]]
    score: Callable[[str, dict[str, Any], int], dict[str, Any]]
    publish: Callable[[str, dict[str, Any], dict[str, Any], Any], dict[str, Any]]
    drift: Callable[[str, dict[str, Any], str], dict[str, Any]]
    signal_drift: Callable[[dict[str, Any], dict[str, Any], Any], dict[str, Any]]
    reconcile: Callable[[str, dict[str, Any], str], dict[str, Any]]
    shadow: Callable[[str, dict[str, Any]], dict[str, Any]]
    performance: Callable[[str, dict[str, Any], str], list[dict[str, Any]]]


def _noop_plan(model: str, context: dict[str, Any], specs_dir: Path, dag_id: str) -> list[int]:
    # Plan-shaped, with no database and no spec: what Airflow alone costs. Shards follow the `shards` param.
    from ml_batch.airflow.runtime import run_day
    from ml_batch.run.plan import RunPlan

    params = context.get("params") or {}
    day, run_id, run_type = run_day(context)
    return _hand_out(context, RunPlan.noop(model, day, run_id, run_type, dry_run=bool(params.get("dry_run")),
                                           shards=int(params.get("shards") or 1)))


def _noop_score(model: str, run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
    from ml_batch.run.shard import ShardResult

    return ShardResult(shard=shard, extracted=0, scored=0, quarantined=0, stage_seconds={}).to_xcom()


def _noop_publish(model: str, run_plan: dict[str, Any], context: dict[str, Any], asset: Any) -> dict[str, Any]:
    from ml_batch.run.publish import RunSummary

    plan_ = _plan(run_plan)
    return RunSummary(model=model, day=plan_.day, run_id=plan_.run_id, version=plan_.version, status="noop",
                      extracted=0, scored=0, quarantined=0, score_mean=None, stage_seconds={}).to_xcom()


def _noop_drift(model: str, run_plan: dict[str, Any], dag_id: str) -> dict[str, Any]:
    return {"status": "noop", "dataset_drift": False, "sustained_drift": False}


def _noop_reconcile(model: str, run_plan: dict[str, Any], dag_id: str) -> dict[str, Any]:
    return {"status": "noop"}


def _noop_shadow(model: str, run_plan: dict[str, Any]) -> dict[str, Any]:
    return {"status": "noop"}


def _noop_performance(model: str, run_plan: dict[str, Any], dag_id: str) -> list[dict[str, Any]]:
    return []


REAL = Bodies(plan=plan, score=score, publish=publish, drift=drift, signal_drift=signal_drift,
              reconcile=reconcile, shadow=shadow, performance=performance)
#: The no-op twin's bodies: return at once (signal_drift is the real one: pure, and skipped on these values).
NOOP = Bodies(plan=_noop_plan, score=_noop_score, publish=_noop_publish, drift=_noop_drift,
              signal_drift=signal_drift, reconcile=_noop_reconcile, shadow=_noop_shadow,
              performance=_noop_performance)

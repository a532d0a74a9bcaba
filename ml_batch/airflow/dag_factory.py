"""Build the daily `batch_predict_<model>` DAG from a spec. Imported only by DAG files.

Parse-time cost: this module and the spec YAML files; no database, no pandas/sklearn/GX import.

One bad spec never hides the others: the DAG files build the DAGs of every *valid* spec (`valid_specs`), and
`dags/model_specs.py`, a DAG file of its own with no DAGs, fails to import naming every invalid spec file and
its field (`refuse_invalid_specs`), which Airflow shows as that file's import error. The error cannot sit in
the files that hold the good DAGs: Airflow marks every DAG of a file with an import error stale (the
api-server hides it, the scheduler stops scheduling it; `_update_import_errors` in
`airflow.dag_processing.collection`), so one broken spec would still take every model's DAGs with it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    task,
)

from ml_batch import config
from ml_batch.airflow import tasks
from ml_batch.airflow.notifiers import MlBatchAlertNotifier
from ml_batch.errors import SpecError
from ml_batch.schedules import cron_expression
from ml_batch.spec import Spec, duration_seconds
from ml_batch.spec_folder import scan_specs

DAG_DOC = """
### Daily batch predictions: `{model}`

{description}

**Day D** is the UTC day this run scores: rows with `D <= {date_column} < D+1` of `{source}`.
It is the `date` param when given; else the start of the run's data interval (the run that fires on
D+1 at `{schedule}` covers [D, D+1)); else, for a manual run without a logical date, yesterday (UTC).

Steps: **plan** (resolve D, pin the champion version and the model's spec once; the spec's sha256 is recorded
on the run) → **score** (one mapped task per shard: extract, validate with Great Expectations, quarantine
failing rows, score, stage) → **publish** (audit the staging table, swap the day's partition of
`{predictions}` in one transaction) → **drift** (against the version's reference profile) →
**signal_drift** (skipped unless the dataset drift is sustained, `drift.alert_after`: then it emits the drift
Asset that triggers `retrain_{model}`); after publish also **reconcile** (the last
`validation.reconcile_days` published days before D whose source rows changed since are re-scored as
`reconcile` runs, with a `late_rows` alert) and **shadow** (challenger scored into `shadow_predictions`) →
**performance** (realized metrics of day D - {delay} whose labels have arrived).
A day that looks incomplete (its volume against its history, the source's `ready_query`) makes **plan** wait
for it, rescheduling itself every `validation.recheck_every` without holding a worker slot, up to
`validation.wait_for_volume`; then it fails without retries and alerts. The `allow_partial` param publishes
such a day anyway, marked partial.
Tasks check that the database schema is at this ml-batch's migration head and fail at once if not (run
`ml-batch db up`, or the airflow-init service).
The run's conf may hold only these params: another key (`dry-run` for `dry_run`) fails **plan** at once,
naming it; `date` is refused at trigger time outside 1900-2099 and by **plan** after a year from today.
Re-running a day replaces it; a dry run publishes nothing. A failure that a retry cannot fix (validation,
spec, model integrity: see `ml_batch.errors`) fails its task at once; others (database unreachable, lock
timeout) are retried with back-off.
"""

RETRAIN_DOC = """
### Retraining: `{model}`

Runs on `{schedule}` and whenever the daily DAG finds sustained dataset drift (`drift.alert_after`). Trains
a candidate on the labels known on the as-of day (default: yesterday, UTC), scores candidate and champion on
the same time-based holdout and promotes only if the candidate reaches `training.min_score` and beats the
champion by `training.min_improvement` (with `training.shadow_days` > 0 it becomes `challenger` first). A
challenger is promoted only on `training.shadow_min_labelled_days` labelled shadow days where it is not
worse than the champion, and demoted after `training.shadow_max_days` without them. The decisions and their
evidence are audited in the registry and alerted; a rejection is a result, not a failure. A retry of `train`
reuses the version this run registered and its recorded decision. Set the `rollback` param to move the
champion back to the previous one instead.{approval}
"""

APPROVAL_DOC = """
With `training.approval: required` (this model) the champion moves only when a person approves: a candidate
that passes the gate without shadow days, or a challenger that earned its promotion in shadow (entering shadow
does not ask). **ask** opens the request (an `approval_requested` alert) and **approval** shows the evidence
(both scores on the same rows: holdout rows, or the labelled rows of the shadow days) under Required Actions;
Approve moves the champion (audited with the approver); Reject, or no answer within
`training.approval_timeout` ({timeout}), records the rejection and keeps the champion; a rejected challenger
loses its alias (**decide**)."""

DEADLINE_DOC = """
### Publish-by deadline: `{model}`

Every hour from `{publish_by}` UTC on, checks that the day `batch_predict_{model}` should have published by
`publish_by` (the day its latest scheduled run that fired by then scores, `ml_batch.monitoring.late`) is published. If
it is not, a `late` alert opens (once: a later check of the same day sends nothing); the day's publish, or the
next check that finds it published, resolves it. It looks at the predictions, not at Airflow's runs, so a day
whose run never started is late too.
"""

# A day param's years, refused at trigger time: 1900 .. 2099 (the plan's `check_day` then bounds it to a year
# after today; a schema that moved with today would give the DAG a new version every day).
_DAY_PATTERN = r"^(19|20)[0-9]{2}-[0-9]{2}-[0-9]{2}$"


def _day_param(title: str, description: str) -> Param:
    return Param(None, type=["null", "string"], format="date", pattern=_DAY_PATTERN, title=title,
                 description=description)


def _refuse_unknown_conf(context: dict[str, Any], dag_id: str, known: list[str]) -> None:
    """The run's conf holds only the DAG's params (`ml_batch.run.plan.check_run_conf`): Airflow's Params
    accept any other key, so the first task refuses it, without retries."""
    from ml_batch.run.plan import check_run_conf

    conf = getattr(context.get("dag_run"), "conf", None) or {}
    tasks.fail_fast(check_run_conf)(conf, known, dag_id=dag_id)


def valid_specs(specs_dir: Path) -> list[Spec]:
    """The specs of `specs_dir` that are valid, in file order: each gets its DAGs whatever the other files hold
    (`refuse_invalid_specs` reports the rest)."""
    return list(scan_specs(specs_dir).specs.values())


def refuse_invalid_specs(specs_dir: Path) -> None:
    """Fail, naming every invalid spec file of `specs_dir` and its field, when there is one.

    Raises:
        SpecError: a summary line, then one line per invalid file (its path, the field and what was expected).
    """
    scan = scan_specs(specs_dir)
    if scan.errors:
        files = "1 invalid model spec file" if len(scan.errors) == 1 else f"{len(scan.errors)} invalid model spec files"
        raise SpecError(
            f"{files} in {specs_dir}: their models have no DAGs (every other model's DAGs are loaded); fix them "
            f"or run `ml-batch specs check`\n{scan.error_text()}"
        )


def predictions_asset(spec: Spec, *, noop: bool = False) -> Asset:
    """The Asset whose events mark a published day of `spec`'s predictions (the no-op DAG's own with `noop`)."""
    kind = "noop-predictions" if noop else "predictions"
    return Asset(name=f"ml_batch.{kind.replace('-', '_')}.{spec.name}", uri=f"ml-batch://{kind}/{spec.name}")


def drift_asset(spec: Spec, *, noop: bool = False) -> Asset:
    """The Asset whose events mark a day with dataset drift (the retraining DAG listens to it; the no-op DAG
    has its own with `noop`, which nothing listens to)."""
    kind = "noop-drift" if noop else "drift"
    return Asset(name=f"ml_batch.{kind.replace('-', '_')}.{spec.name}", uri=f"ml-batch://{kind}/{spec.name}")


def _schedule(spec: Spec) -> Any:
    """The daily DAG's schedule: its cron, and the source's readiness Asset when the spec names one (a run it
    triggers scores the day named in the event's extra, see `ml_batch.run.partition`)."""
    cron = CronDataIntervalTimetable(spec.schedule, timezone="UTC")
    if spec.source.ready_asset is None:
        return cron
    return AssetOrTimeSchedule(timetable=cron, assets=Asset(uri=spec.source.ready_asset))


def _default_args(spec: Spec) -> dict[str, Any]:
    # The failure alert is a task's callback, not the DAG's: only a task's context carries the exception, so
    # the alert can name the cause (and a day refused as incomplete alerts as `incomplete_day`).
    return {
        "on_failure_callback": MlBatchAlertNotifier(spec.name),
        "owner": spec.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=30),
    }


def _start(spec: Spec) -> Any:
    return pendulum.datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tz="UTC")


def _params() -> dict[str, Param]:
    return {
        "date": _day_param("Day to score (UTC)",
                           "YYYY-MM-DD, from 1900-01-01 to a year after today. Empty: the run's data interval "
                           "start (yesterday for a manual run)."),
        "version": Param(None, type=["null", "integer"], minimum=1, title="Model version",
                         description="Score with this registered version. Empty: see version_policy."),
        "version_policy": Param("champion", type="string", enum=["champion", "champion_on_day"],
                                title="Which version when none is given",
                                description="champion: the current champion. champion_on_day: the version that "
                                            "was champion at the end of the day (for faithful backfills)."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Validate and score, publish nothing."),
        "allow_partial": Param(False, type="boolean", title="Publish an incomplete day",
                               description="Publish the day even when its volume is out of line with its "
                                           "history or the source's ready_query says no; the run is marked "
                                           "partial (a feature that turned NULL is still refused)."),
        "shards": Param(None, type=["null", "integer"], minimum=1, maximum=64, title="Shards",
                        description="Split the day into this many mapped scoring tasks. Empty: the spec's "
                                    "scoring.shards, else one per scoring.rows_per_shard rows."),
    }


def build_dag(spec: Spec, *, specs_dir: Path | None = None, doc_md: str | None = None, noop: bool = False) -> DAG:
    """The daily batch-prediction DAG of one model.

    `noop=True` builds `noop_batch_predict_<model>`: the same tasks, mapping, dependencies and params (this
    function builds both), with bodies that return at once (`tasks.NOOP`) and Assets of its own, so it never
    triggers retraining. Benchmarks backfill it to measure what Airflow itself costs per day.

    `specs_dir` is the folder the DAG file read `spec` from (default: `config.specs_dir()`, resolved now): the
    plan task reads the spec from that same folder.
    """
    model = spec.name
    folder = specs_dir or config.specs_dir()
    bodies = tasks.NOOP if noop else tasks.REAL
    prefix = "noop_" if noop else ""
    dag_id = f"{prefix}batch_predict_{model}"
    asset = predictions_asset(spec, noop=noop)
    drifted_asset = drift_asset(spec, noop=noop)
    doc = doc_md or DAG_DOC.format(
        model=model, description=spec.description, date_column=spec.source.date_column,
        source=spec.source.table or "the spec's query", schedule=spec.schedule, predictions=spec.predictions.table,
        delay=spec.labels.delay_days,
    )
    params = _params()
    known = sorted(params)  # the conf keys a run may give, fixed at parse time
    if noop:
        doc = f"**No-op twin** of `batch_predict_{model}` (same shape, bodies return at once).\n{doc}"
    with DAG(
        dag_id=dag_id,
        doc_md=doc,
        schedule=_schedule(spec),
        start_date=_start(spec),
        catchup=False,
        # Days are independent (per-run staging, per-day publish lock), so backfills may run days in parallel.
        max_active_runs=spec.max_active_runs,
        default_args=_default_args(spec),
        params=params,
        tags=["ml-batch", "batch-predict", model, *(["noop"] if noop else [])],
    ) as dag:

        @task(task_id="plan")
        def plan(**context: Any) -> list[int]:
            # Returns the shard numbers (what `score` maps over); the run plan is the XCom `run_plan`.
            _refuse_unknown_conf(context, dag_id, known)
            return bodies.plan(model, context, folder, dag_id)

        @task(task_id="score", max_active_tis_per_dagrun=8)
        def score(run_plan: dict[str, Any], shard: int) -> dict[str, Any]:
            return bodies.score(model, run_plan, shard)

        @task(task_id="publish", outlets=[asset])
        def publish(run_plan: dict[str, Any], results: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
            return bodies.publish(model, run_plan, context, asset)

        @task(task_id="drift")
        def drift(run_plan: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            return bodies.drift(model, run_plan, dag_id)

        @task(task_id="signal_drift", outlets=[drifted_asset])
        def signal_drift(summary: dict[str, Any], **context: Any) -> dict[str, Any]:
            # Skipped (no Asset event) unless the drift is sustained (drift.alert_after: K of the last M days).
            return bodies.signal_drift(summary, context, drifted_asset)

        @task(task_id="reconcile")
        def reconcile(run_plan: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            return bodies.reconcile(model, run_plan, dag_id)

        @task(task_id="shadow")
        def shadow(run_plan: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            return bodies.shadow(model, run_plan)

        @task(task_id="performance")
        def performance(run_plan: dict[str, Any], published: dict[str, Any]) -> list[dict[str, Any]]:
            return bodies.performance(model, run_plan, dag_id)

        shard_numbers = plan()
        run_plan = shard_numbers[tasks.RUN_PLAN_KEY]  # type: ignore[index]  # a PlainXComArg: XCom `run_plan`
        scored = score.partial(run_plan=run_plan).expand(shard=shard_numbers)
        published = publish(run_plan, scored)
        signal_drift(drift(run_plan, published))
        reconcile(run_plan, published)
        # performance follows shadow (both write monitoring rows of the day), without taking its value.
        shadow(run_plan, published) >> performance(run_plan, published)
    return dag


def build_retrain_dag(spec: Spec, *, specs_dir: Path | None = None) -> DAG:
    """The `retrain_<model>` DAG: on its schedule and on the drift Asset; gated promotion; rollback param."""
    model = spec.name
    folder = specs_dir or config.specs_dir()
    dag_id = f"retrain_{model}"
    cron = cron_expression(spec.training.schedule)
    params = {
        "as_of": _day_param("Labels known on",
                            "YYYY-MM-DD, from 1900-01-01 to a year after today. Empty: yesterday (UTC)."),
        "rollback": Param(False, type="boolean", title="Roll back instead of training",
                          description="Move champion back to the previous champion (audited)."),
        "reason": Param(None, type=["null", "string"], title="Reason (for the audit trail)"),
    }
    known = sorted(params)
    with DAG(
        dag_id=dag_id,
        doc_md=RETRAIN_DOC.format(model=model, schedule=spec.training.schedule, approval=(
            APPROVAL_DOC.format(timeout=spec.training.approval_timeout) if spec.training.approval == "required"
            else "")),
        schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"),
                                     assets=drift_asset(spec)),
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,  # one candidate at a time: two gates must not race on the same champion
        default_args=_default_args(spec),
        params=params,
        tags=["ml-batch", "retrain", model],
    ) as dag:

        @task.branch(task_id="mode")
        def mode(**context: Any) -> str:
            _refuse_unknown_conf(context, dag_id, known)
            return tasks.retrain_mode(context)

        @task(task_id="rollback")
        def rollback(**context: Any) -> dict[str, Any]:
            return tasks.rollback(model, context)

        @task(task_id="train")
        def train(**context: Any) -> dict[str, Any]:
            return tasks.train_and_gate(model, context, dag_id, folder)

        trained = train()
        mode() >> [rollback(), trained]
        if spec.training.approval == "required":
            _approval_tasks(spec, folder, trained)
    return dag


def _approval_tasks(spec: Spec, folder: Path, trained: Any) -> None:
    """`ask` (skips the rest unless the candidate awaits approval; opens the request) >> `approval` (Airflow's
    Human-in-the-loop: Approve or Reject, Reject when nobody answers in `training.approval_timeout`) >>
    `decide` (records the answer and who gave it; moves the alias on Approve only)."""
    # HITL operators need Airflow 3.1+ (the pinned 3.3 parks the task as `awaiting_input`, holding no slot;
    # the scheduler applies the default on timeout). Imported only for a spec that asks for approval.
    from airflow.providers.standard.operators.hitl import HITLOperator

    from ml_batch.promotion.approval import OPTIONS, TIMEOUT_DEFAULT

    model = spec.name

    @task.short_circuit(task_id="ask")
    def ask(train_result: dict[str, Any], **context: Any) -> dict[str, Any] | None:
        return tasks.open_approval(model, train_result, context, folder)

    @task(task_id="decide")
    def decide(request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        return tasks.decide_approval(model, request, response, folder)

    asked = ask(trained)
    approval = HITLOperator(
        task_id="approval", options=list(OPTIONS), defaults=[TIMEOUT_DEFAULT],
        subject="{{ ti.xcom_pull(task_ids='ask')['subject'] }}", body="{{ ti.xcom_pull(task_ids='ask')['body'] }}",
        response_timeout=dt.timedelta(seconds=duration_seconds(spec.training.approval_timeout)),
    )
    asked >> approval
    decide(asked, approval.output)


def build_deadline_dag(spec: Spec, *, specs_dir: Path | None = None) -> DAG | None:
    """The `publish_deadline_<model>` DAG of a spec with `publish_by` (None without one): hourly, from the
    deadline's minute, a check of the day due by then (`tasks.check_publish_deadline`)."""
    if spec.publish_by is None:
        return None
    model = spec.name
    folder = specs_dir or config.specs_dir()
    minute = int(spec.publish_by.split(":")[1])
    with DAG(
        dag_id=f"publish_deadline_{model}",
        doc_md=DEADLINE_DOC.format(model=model, publish_by=spec.publish_by),
        # Hourly at the deadline's minute: the first check is at publish_by, the next ones resolve a day published
        # late even if its publish task could not (a check that finds it published resolves the alert).
        schedule=CronTriggerTimetable(f"{minute} * * * *", timezone="UTC"),
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        tags=["ml-batch", "publish-deadline", model],
    ) as dag:

        @task(task_id="check")
        def check(**context: Any) -> dict[str, Any]:
            return tasks.check_publish_deadline(model, context, folder)

        check()
    return dag

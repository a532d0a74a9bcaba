"""DAG integrity and policy, astro-CLI style: parse the repo's `dags/` folder into a DagBag the way the DAG
processor does and check every DAG in it. Parsing needs no metadata database (test_parse_time.py proves it).

Param validation goes through the serialized DAG, as in the scheduler: a triggered run's conf is checked by
`SerializedDAG.create_dagrun` with `dag.params.deep_merge(conf).validate()`.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from pathlib import Path
from typing import Any

import pendulum
import pytest
import yaml
from airflow.dag_processing.dagbag import BundleDagBag
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable
from airflow.sdk.exceptions import ParamValidationError
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction

from ml_batch.spec import Spec
from ml_batch.spec_folder import load_specs

REPO = Path(__file__).resolve().parents[2]
DAGS_DIR = REPO / "dags"
DEMO_SPECS = REPO / "include" / "models"
DEMO_SPEC_FILE = DEMO_SPECS / "credit_default.yaml"
DAG_PREFIX = "batch_predict_"
RETRAIN_PREFIX = "retrain_"
TASK_IDS = {"plan", "score", "publish", "drift", "signal_drift", "reconcile", "shadow", "performance"}
RETRAIN_TASK_IDS = {"mode", "rollback", "train"}
RUN_PARAMS = {"date", "version", "version_policy", "dry_run", "allow_partial", "shards"}


def parse_dags_folder(specs_dir: Path) -> BundleDagBag:
    """Parse `dags/` as the DAG processor does, the DAG file reading its specs from `specs_dir`.

    Each call imports the DAG file afresh, so it sees the ML_BATCH_SPECS_DIR set here.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ML_BATCH_SPECS_DIR", str(specs_dir))
        return BundleDagBag(dag_folder=DAGS_DIR, bundle_path=DAGS_DIR, bundle_name="dags-folder")


@functools.cache
def demo_bag() -> BundleDagBag:
    """The DagBag of the repo's own specs, parsed once (at collection, to parametrise over its DAGs)."""
    return parse_dags_folder(DEMO_SPECS)


@functools.cache
def serialized(dag_id: str) -> Any:
    """The DAG as the scheduler sees it: serialized by the DAG processor, then deserialized."""
    return DagSerialization.from_dict(DagSerialization.to_dict(demo_bag().dags[dag_id]))


@pytest.fixture(params=sorted(demo_bag().dag_ids))
def dag(request: pytest.FixtureRequest) -> DAG:
    return demo_bag().dags[request.param]


@pytest.fixture(params=sorted(d for d in demo_bag().dag_ids if d.startswith(DAG_PREFIX)))
def predict_dag(request: pytest.FixtureRequest) -> DAG:
    return demo_bag().dags[request.param]


@pytest.fixture(params=sorted(d for d in demo_bag().dag_ids if d.startswith(RETRAIN_PREFIX)))
def retrain_dag(request: pytest.FixtureRequest) -> DAG:
    return demo_bag().dags[request.param]


@pytest.fixture()
def spec(request: pytest.FixtureRequest) -> Spec:
    dag = request.getfixturevalue("predict_dag" if "predict_dag" in request.fixturenames else "dag")
    return load_specs(DEMO_SPECS)[dag.dag_id.removeprefix(DAG_PREFIX).removeprefix(RETRAIN_PREFIX)]


def _last_line(traceback_text: str) -> str:
    return traceback_text.strip().splitlines()[-1]


def _write_spec(folder: Path, name: str, **changes: Any) -> Path:
    """A copy of the demo spec under another model name (and predictions table), with `changes` applied."""
    raw = yaml.safe_load(DEMO_SPEC_FILE.read_text())
    raw.update(name=name, predictions={**raw["predictions"], "table": f"predictions.{name}"})
    raw.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


# --- the folder as a whole ---------------------------------------------------------------------------------


def test_no_import_errors() -> None:
    errors = {path: _last_line(text) for path, text in demo_bag().import_errors.items()}
    assert errors == {}


def test_no_parse_warnings() -> None:
    # Warnings raised while importing a DAG file (deprecations, ...) show up as DAG warnings in the UI.
    assert demo_bag().captured_warnings == {}


def test_one_dag_per_spec_file() -> None:
    expected = {f"{prefix}{name}" for name in load_specs(DEMO_SPECS) for prefix in (DAG_PREFIX, RETRAIN_PREFIX)}
    assert expected, f"no spec files in {DEMO_SPECS}"
    assert set(demo_bag().dag_ids) == expected


# --- policy, per DAG ---------------------------------------------------------------------------------------


def test_serializes_for_the_scheduler(dag: DAG) -> None:
    assert serialized(dag.dag_id).dag_id == dag.dag_id


def test_tagged_ml_batch(dag: DAG) -> None:
    assert "ml-batch" in dag.tags


def test_owner_is_the_specs_not_airflows_default(dag: DAG, spec: Spec) -> None:
    owners = {task.task_id: task.owner for task in dag.tasks}
    assert all(owner and owner.lower() != "airflow" for owner in owners.values()), owners
    assert set(owners.values()) == {spec.owner}


def test_every_task_retries_with_exponential_backoff(dag: DAG) -> None:
    for task in dag.tasks:
        assert (task.retries or 0) >= 1, f"{task.task_id}: retries={task.retries}"
        assert task.retry_exponential_backoff, f"{task.task_id}: no exponential backoff"


# Task bodies that only reshape values they were handed, and so cannot hit a deterministic ml-batch failure.
_PURE_TASK_BODIES = {"signal_drift", "retrain_mode"}


def test_every_task_body_that_calls_ml_batch_fails_fast() -> None:
    """Retries are for transient failures: each body that calls into ml-batch is wrapped in `fail_fast`, which
    turns a deterministic failure (validation, spec, integrity...) into AirflowFailException (no retry)."""
    import inspect

    from ml_batch.airflow import tasks

    bodies = {name: fn for name, fn in vars(tasks).items()
              if inspect.isfunction(fn) and fn.__module__ == tasks.__name__ and not name.startswith("_")
              and name != "fail_fast"}
    assert {"plan", "score", "publish", "train_and_gate"} <= set(bodies)
    unwrapped = sorted(name for name, fn in bodies.items()
                       if name not in _PURE_TASK_BODIES and getattr(fn, "__wrapped__", None) is None)
    assert unwrapped == [], f"task bodies without @fail_fast: {unwrapped}"


def test_doc_md_explains_day_d(predict_dag: DAG) -> None:
    assert predict_dag.doc_md and predict_dag.doc_md.strip()
    assert "Day D" in predict_dag.doc_md


def test_no_catchup(dag: DAG) -> None:
    assert dag.catchup is False


def test_backfills_run_days_in_parallel(predict_dag: DAG) -> None:
    assert predict_dag.max_active_runs > 1


def test_timetable_has_utc_data_intervals(predict_dag: DAG) -> None:
    timetable = predict_dag.timetable
    assert isinstance(timetable, CronDataIntervalTimetable), type(timetable)
    assert getattr(timetable.timezone, "name", timetable.timezone) == "UTC"
    # A data-interval timetable fires at the end of a non-empty interval (the CronTrigger default would
    # give start == end == run_after, and a run would have no day to score).
    assert predict_dag.start_date is not None
    info = serialized(predict_dag.dag_id).timetable.next_dagrun_info(
        last_automated_data_interval=None,
        restriction=TimeRestriction(earliest=pendulum.instance(predict_dag.start_date), latest=None, catchup=True),
    )
    assert info is not None
    assert info.data_interval.start < info.data_interval.end == info.run_after
    assert info.data_interval.start.utcoffset() == dt.timedelta(0)


def test_params_declared_with_valid_defaults(predict_dag: DAG) -> None:
    assert set(predict_dag.params) >= RUN_PARAMS
    defaults = serialized(predict_dag.dag_id).params.deep_merge({}).validate()
    assert defaults["date"] is None and defaults["version"] is None


def test_params_accept_a_full_run_conf(predict_dag: DAG) -> None:
    conf = {"date": "2026-12-31", "version": 3, "version_policy": "champion_on_day", "dry_run": True, "shards": 8}
    resolved = serialized(predict_dag.dag_id).params.deep_merge(conf).validate()
    assert {key: resolved[key] for key in conf} == conf


@pytest.mark.parametrize(
    "conf",
    [
        {"date": "31/12/2026"},
        {"date": "2026-02-30"},
        {"version": 0},
        {"version": "3"},
        {"version_policy": "latest"},
        {"dry_run": "yes"},
        {"shards": 0},
        {"shards": 1000},
    ],
    ids=lambda conf: "-".join(f"{k}={v}" for k, v in conf.items()),
)
def test_params_reject_bad_values(predict_dag: DAG, conf: dict[str, Any]) -> None:
    (key,) = conf
    with pytest.raises(ParamValidationError, match=f"param {key}"):
        serialized(predict_dag.dag_id).params.deep_merge(conf).validate()


def test_tasks_plan_score_publish(predict_dag: DAG) -> None:
    assert {task.task_id for task in predict_dag.tasks} == TASK_IDS
    assert {"drift", "shadow", "reconcile"} <= predict_dag.get_task("publish").downstream_task_ids
    assert predict_dag.get_task("reconcile").downstream_task_ids == set()
    assert predict_dag.get_task("drift").downstream_task_ids == {"signal_drift"}
    assert predict_dag.get_task("shadow").downstream_task_ids == {"performance"}
    assert "score" in predict_dag.get_task("plan").downstream_task_ids
    assert "publish" in predict_dag.get_task("score").downstream_task_ids


def test_score_maps_over_the_plans_shard_numbers(predict_dag: DAG) -> None:
    # No pass-through task: `score` expands over plan's return value (the shard numbers) and takes the run
    # plan from plan's XCom `run_plan` (Airflow sizes a mapping by the return value, whatever its key).
    from ml_batch.airflow.tasks import RUN_PLAN_KEY

    score = predict_dag.get_task("score")
    mapped = score.op_kwargs_expand_input.value["shard"]
    assert (mapped.operator.task_id, mapped.key) == ("plan", "return_value")
    run_plan = score.partial_kwargs["op_kwargs"]["run_plan"]
    assert (run_plan.operator.task_id, run_plan.key) == ("plan", RUN_PLAN_KEY)


def test_publish_emits_the_predictions_asset(predict_dag: DAG, spec: Spec) -> None:
    names = {outlet.name for outlet in predict_dag.get_task("publish").outlets if isinstance(outlet, Asset)}
    assert f"ml_batch.predictions.{spec.name}" in names


# --- the specs folder drives the DAGs ----------------------------------------------------------------------


def test_two_spec_files_give_two_dags(tmp_path: Path) -> None:
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    _write_spec(tmp_path, "churn_risk")

    bag = parse_dags_folder(tmp_path)

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"batch_predict_credit_default", "batch_predict_churn_risk",
                                "retrain_credit_default", "retrain_churn_risk"}
    outlets = bag.dags["batch_predict_churn_risk"].get_task("publish").outlets
    assert {outlet.name for outlet in outlets} == {"ml_batch.predictions.churn_risk"}


def _broken_spec(folder: Path, name: str) -> Path:
    """A spec of model `name` without `source.date_column` (the mistake of issue 22)."""
    raw = yaml.safe_load(DEMO_SPEC_FILE.read_text())
    source = {key: value for key, value in raw["source"].items() if key != "date_column"}
    return _write_spec(folder, name, source=source)


SPEC_ERRORS_FILE = "model_specs.py"


def _both_dags(*models: str) -> set[str]:
    return {f"{prefix}{model}" for model in models for prefix in (DAG_PREFIX, RETRAIN_PREFIX)}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_active_runs": 0}, "max_active_runs"),
        ({"predictions": {"table": "predictions.churn-risk"}}, "predictions.table"),
        ({"schedul": "0 6 * * *"}, "schedul"),
        # A schedule Airflow refuses was an import error of batch_predict.py, which made every model's daily
        # DAG stale, and named neither the file nor the field.
        ({"schedule": "every morning"}, "schedule"),
        ({"training": {"schedule": "0 25 * * *"}}, "training.schedule"),
    ],
    ids=["out-of-range", "bad-identifier", "unknown-field", "bad-schedule", "bad-training-schedule"],
)
def test_invalid_spec_is_an_import_error_naming_file_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str
) -> None:
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    broken = _write_spec(tmp_path, "churn_risk", **changes)

    bag = parse_dags_folder(tmp_path)

    assert sorted(bag.import_errors) == [SPEC_ERRORS_FILE]
    message = bag.import_errors[SPEC_ERRORS_FILE]
    assert f"ml_batch.errors.SpecError: 1 invalid model spec file in {tmp_path}:" in message
    assert _last_line(message).startswith(f"{broken}: field '{field}'")
    assert set(bag.dag_ids) == _both_dags("credit_default")


def test_one_broken_spec_hides_no_other_models_dags(tmp_path: Path) -> None:
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    _write_spec(tmp_path, "churn_risk")
    broken = _broken_spec(tmp_path, "fraud_risk")

    bag = parse_dags_folder(tmp_path)

    assert set(bag.dag_ids) == _both_dags("credit_default", "churn_risk")
    assert sorted(bag.import_errors) == [SPEC_ERRORS_FILE]
    assert _last_line(bag.import_errors[SPEC_ERRORS_FILE]) == (
        f"{broken}: field 'source.date_column': required field is missing")


def test_every_broken_spec_is_named_and_a_fixed_one_clears_its_error(tmp_path: Path) -> None:
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    first, second = _broken_spec(tmp_path, "churn_risk"), _broken_spec(tmp_path, "fraud_risk")

    message = parse_dags_folder(tmp_path).import_errors[SPEC_ERRORS_FILE]
    assert f"SpecError: 2 invalid model spec files in {tmp_path}:" in message
    assert message.strip().splitlines()[-2:] == [
        f"{path}: field 'source.date_column': required field is missing" for path in (first, second)]

    _write_spec(tmp_path, "churn_risk")
    bag = parse_dags_folder(tmp_path)
    assert str(first) not in bag.import_errors[SPEC_ERRORS_FILE]
    assert set(bag.dag_ids) == _both_dags("credit_default", "churn_risk")

    _write_spec(tmp_path, "fraud_risk")
    bag = parse_dags_folder(tmp_path)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == _both_dags("credit_default", "churn_risk", "fraud_risk")


def test_a_duplicate_model_name_is_an_error_of_the_copy(tmp_path: Path) -> None:
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    copy = tmp_path / "a_copy.yaml"
    shutil.copy(DEMO_SPEC_FILE, copy)

    bag = parse_dags_folder(tmp_path)

    assert set(bag.dag_ids) == _both_dags("credit_default")
    assert _last_line(bag.import_errors[SPEC_ERRORS_FILE]) == (
        f"{copy}: model name 'credit_default' is already defined in {tmp_path / 'credit_default.yaml'}")


# --- the retraining DAG ------------------------------------------------------------------------------------


def test_retrain_runs_on_its_schedule_and_on_the_drift_asset(retrain_dag: DAG) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    model = retrain_dag.dag_id.removeprefix(RETRAIN_PREFIX)
    assert isinstance(retrain_dag.timetable, AssetOrTimeSchedule)
    condition = retrain_dag.timetable.asset_condition
    assert isinstance(condition, Asset) and condition.name == f"ml_batch.drift.{model}"
    assert retrain_dag.max_active_runs == 1, "two gates must never race on the same champion"


def test_retrain_tasks_and_params(retrain_dag: DAG) -> None:
    assert {task.task_id for task in retrain_dag.tasks} == RETRAIN_TASK_IDS
    assert retrain_dag.get_task("mode").downstream_task_ids == {"rollback", "train"}
    assert {"as_of", "rollback", "reason"} <= set(retrain_dag.params)
    with pytest.raises(ParamValidationError, match="param as_of"):
        serialized(retrain_dag.dag_id).params.deep_merge({"as_of": "yesterday"}).validate()


def test_daily_drift_task_emits_the_asset_retraining_listens_to(predict_dag: DAG) -> None:
    model = predict_dag.dag_id.removeprefix(DAG_PREFIX)
    names = {outlet.name for outlet in predict_dag.get_task("signal_drift").outlets if isinstance(outlet, Asset)}
    assert names == {f"ml_batch.drift.{model}"}


@pytest.mark.parametrize("day", ["9999-12-31", "1899-12-31", "2100-01-01"])
def test_a_day_outside_1900_to_2099_is_refused_at_trigger_time(predict_dag: DAG, retrain_dag: DAG, day: str) -> None:
    # The serialized DAG's create_dagrun validates this: `9999-12-31` never reaches a task (an OverflowError there
    # was retried for minutes).
    with pytest.raises(ParamValidationError, match="param date"):
        serialized(predict_dag.dag_id).params.deep_merge({"date": day}).validate()
    with pytest.raises(ParamValidationError, match="param as_of"):
        serialized(retrain_dag.dag_id).params.deep_merge({"as_of": day}).validate()


def _first_task_with_conf(dag: DAG, task_id: str, conf: dict[str, Any]) -> Any:
    """Run the first task's body with a run conf, as the task runner would, up to its conf check."""
    from types import SimpleNamespace

    task: Any = dag.get_task(task_id)  # a @task's operator: its python_callable is the body
    return task.python_callable(dag_run=SimpleNamespace(conf=conf), params=dict(conf))


def test_a_misspelt_conf_key_fails_the_plan_at_once_naming_it(predict_dag: DAG) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as refused:
        _first_task_with_conf(predict_dag, "plan", {"date": "2013-02-07", "dry-run": True})
    assert str(refused.value).startswith(
        f"run conf of {predict_dag.dag_id}: unknown key 'dry-run' (did you mean 'dry_run'?): expected only "
        "allow_partial, date, dry_run, shards, version, version_policy; nothing was run")
    assert len(str(refused.value).splitlines()) == 1


def test_a_misspelt_conf_key_fails_retraining_at_once(retrain_dag: DAG) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=r"unknown key 'as-of' \(did you mean 'as_of'\?\)"):
        _first_task_with_conf(retrain_dag, "mode", {"as-of": "2026-01-01"})
    assert _first_task_with_conf(retrain_dag, "mode", {"rollback": True}) == "rollback"  # a known key runs


# --- approval and publish-by (spec fields that add tasks and a DAG) -----------------------------------------


def test_a_spec_asking_for_approval_gets_ask_approval_and_decide_after_train(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEMO_SPEC_FILE.read_text())
    _write_spec(tmp_path, "churn_risk", training={**raw.get("training", {}), "approval": "required",
                                                  "approval_timeout": "2h"})
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    bag = parse_dags_folder(tmp_path)
    assert bag.import_errors == {}
    asked = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["retrain_churn_risk"]))
    assert set(asked.task_ids) == RETRAIN_TASK_IDS | {"ask", "approval", "decide"}
    assert asked.get_task("ask").upstream_task_ids == {"train"}
    assert asked.get_task("approval").upstream_task_ids == {"ask"}
    assert asked.get_task("decide").upstream_task_ids == {"ask", "approval"}
    assert asked.get_task("approval").task_type == "HITLOperator"
    plain = bag.dags["retrain_credit_default"]  # the default, `approval: none`: the DAG as before
    assert set(plain.task_ids) == RETRAIN_TASK_IDS


def test_a_spec_with_publish_by_gets_an_hourly_deadline_dag_at_its_minute(tmp_path: Path) -> None:
    _write_spec(tmp_path, "churn_risk", publish_by="08:30")
    shutil.copy(DEMO_SPEC_FILE, tmp_path)
    bag = parse_dags_folder(tmp_path)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == _both_dags("credit_default", "churn_risk") | {"publish_deadline_churn_risk"}
    deadline = bag.dags["publish_deadline_churn_risk"]
    assert deadline.task_ids == ["check"]
    assert (deadline.timetable.expression, str(deadline.timetable.timezone)) == ("30 * * * *", "UTC")

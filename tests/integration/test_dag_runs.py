"""The daily DAG run by real Airflow (`dag.test()`, sqlite metadata DB) against the real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.model import registry
from ml_batch.ops import alerts
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.runs import list_runs
from tests.integration.helpers import airflow_task_env
from tests.support.toy import AS_OF, DAY, trained_toy

pytestmark = pytest.mark.integration


@pytest.fixture()
def toy_dag(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    spec = trained_toy(engine, settings.schema)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec, _Dag(spec)


class _Dag:
    """Runs `dag.test()` on a freshly built DAG each time, as the scheduler parses the file for each run
    (dag.test() mutates the DAG object's params with the run's conf)."""

    def __init__(self, spec, factory: str = "build_dag") -> None:
        self.spec = spec
        self.factory = factory

    def test(self, **kwargs):
        from ml_batch.airflow import dag_factory

        dag = getattr(dag_factory, self.factory)(self.spec)
        for t in dag.tasks:
            t.retries = 0  # a failing test should fail now, not after the production retry delays
        return dag.test(**kwargs)


def _rows(engine: sa.Engine, spec, day: dt.date) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT id, model_version, run_id FROM {spec.predictions.table} "
                                    "WHERE partition_date = :d ORDER BY id"), {"d": day}).all()


def _ids_of(engine: sa.Engine, spec, day: dt.date) -> list[int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT id FROM {spec.source.table} WHERE event_time >= :s AND "
                                    "event_time < :e ORDER BY id"),
                            {"s": start, "e": start + dt.timedelta(days=1)}).scalars().all()


def _interval_run(dag, day: dt.date, **conf):
    # A run whose data interval is [D 06:00, D+1 06:00): what the scheduler and a backfill create for day D.
    return dag.test(logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC),
                    run_conf=conf or None)


def test_interval_run_scores_day_d_end_to_end(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    run = _interval_run(dag, DAY)
    assert run.state == "success"
    rows = _rows(engine, spec, DAY)
    assert [r.id for r in rows] == _ids_of(engine, spec, DAY)
    assert {r.model_version for r in rows} == {1} and {r.run_id for r in rows} == {run.run_id}
    recorded = list_runs(engine, "toy")[0]
    assert (recorded["status"], recorded["rows_extracted"], recorded["rows_scored"]) == ("success", 80, 80)


def test_manual_run_with_a_date_param_scores_that_day_only(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    run = dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})
    assert run.state == "success"
    assert [r.id for r in _rows(engine, spec, DAY)] == _ids_of(engine, spec, DAY)
    with engine.connect() as conn:
        days = conn.execute(sa.text(f"SELECT DISTINCT partition_date FROM {spec.predictions.table}")).scalars().all()
    assert days == [DAY]


def test_manual_run_without_logical_date_scores_yesterday(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    run_after = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    run = dag.test(logical_date=None, run_after=run_after)
    assert run.state == "success"
    assert [r.id for r in _rows(engine, spec, DAY)] == _ids_of(engine, spec, DAY)


def test_rerunning_the_same_day_three_times_leaves_one_copy(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    run_ids = [dag.test(logical_date=None, run_conf={"date": DAY.isoformat()}).run_id for _ in range(3)]
    rows = _rows(engine, spec, DAY)
    assert len(rows) == 80 and len({r.id for r in rows}) == 80
    assert {r.run_id for r in rows} == {run_ids[-1]} and {r.model_version for r in rows} == {1}


def test_sharded_dry_run_and_version_params(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    dry = dag.test(logical_date=None, run_conf={"date": DAY.isoformat(), "dry_run": True, "shards": 3})
    assert dry.state == "success" and _rows(engine, spec, DAY) == []
    assert list_runs(engine, "toy")[0]["status"] == "dry_run"
    v2 = train_and_register(engine, spec, AS_OF, actor="t").version.version
    run = dag.test(logical_date=None, run_conf={"date": DAY.isoformat(), "version": v2, "shards": 3})
    assert run.state == "success"
    assert {r.model_version for r in _rows(engine, spec, DAY)} == {v2}
    assert registry.aliases(engine, "toy")["champion"] == 1


def test_a_promotion_between_runs_changes_only_the_later_day(engine: sa.Engine, toy_dag) -> None:
    spec, dag = toy_dag
    assert _interval_run(dag, DAY).state == "success"
    v2 = train_and_register(engine, spec, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", v2, actor="t", reason="between runs")
    assert _interval_run(dag, DAY + dt.timedelta(days=1)).state == "success"
    assert {r.model_version for r in _rows(engine, spec, DAY)} == {1}
    assert {r.model_version for r in _rows(engine, spec, DAY + dt.timedelta(days=1))} == {v2}


def test_batch_failure_fails_the_run_and_publishes_nothing(
    settings: Settings, engine: sa.Engine, toy_dag, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec, dag = toy_dag
    strict = spec.model_copy(update={"validation": spec.validation.model_copy(update={"min_rows": 500})})
    specs_dir = tmp_path / "strict"
    specs_dir.mkdir()
    (specs_dir / "toy.yaml").write_text(yaml.safe_dump(strict.model_dump(mode="json")))
    monkeypatch.setenv("ML_BATCH_SPECS_DIR", str(specs_dir))
    run = dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})
    assert run.state == "failed"
    assert _rows(engine, spec, DAY) == []
    failed = list_runs(engine, "toy")[0]
    assert failed["status"] == "failed" and "80 rows extracted, expected between 500" in failed["error"]
    # The DAG's notifier turned the failure into an alert.
    [alert] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "run_failure"]
    assert alert["dag_id"] == "batch_predict_toy" and alert["run_id"] == run.run_id
    assert alert["severity"] == "critical"


def test_publish_emits_an_asset_event(engine: sa.Engine, toy_dag) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    _, dag = toy_dag
    run = dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})
    assert run.state == "success"
    with create_session() as session:
        events = (
            session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "ml_batch.predictions.toy", AssetEvent.source_run_id == run.run_id).all()
        )
    assert len(events) == 1
    assert events[0].extra == {"model": "toy", "day": DAY.isoformat(), "version": 1, "scored": 80, "quarantined": 0}


def _task_states(run) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id,
                                                 TaskInstance.run_id == run.run_id).all()
        return {ti.task_id: str(ti.state) for ti in tis}


def test_drift_signal_only_on_sustained_drift(engine: sa.Engine, toy_dag) -> None:
    """The drift Asset (which triggers retraining) is emitted only when `drift.alert_after` (default 2 of the
    last 3 days) is met: one drifted day alone is not enough."""
    spec, dag = toy_dag
    calm = dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})
    states = _task_states(calm)
    assert states["drift"] == "success" and states["signal_drift"] == "skipped"
    signals = []
    for offset in (1, 2):
        shifted_day = DAY + dt.timedelta(days=offset)
        start = dt.datetime.combine(shifted_day, dt.time(), tzinfo=dt.UTC)
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {spec.source.table} SET x1 = x1 + 3, x2 = x2 - 3 "
                                 "WHERE event_time >= :s AND event_time < :e"),
                         {"s": start, "e": start + dt.timedelta(days=1)})
        drifted = dag.test(logical_date=None, run_conf={"date": shifted_day.isoformat()})
        signals.append(_task_states(drifted)["signal_drift"])
    assert signals == ["skipped", "success"]
    assert [a["partition_date"] for a in alerts.recent(engine, "toy") if a["kind"] == "dataset_drift"] == [
        DAY + dt.timedelta(days=2)]


def test_retrain_dag_records_the_gate_decision_and_rolls_back_on_request(engine: sa.Engine, toy_dag) -> None:
    spec, _ = toy_dag
    retrain = _Dag(spec, "build_retrain_dag")
    run = retrain.test(logical_date=None, run_conf={"as_of": AS_OF.isoformat()})
    assert run.state == "success", "a rejected candidate is a result, not a failure"
    decision = next(e for e in registry.events(engine, "toy") if e["event"] == "gate_decision")
    assert decision["to_version"] == 2 and decision["details"]["candidate_score"] is not None
    assert decision["details"]["champion_score"] is not None
    registry.promote(engine, "toy", 2, actor="t", reason="manual")
    rollback = retrain.test(logical_date=None, run_conf={"rollback": True, "reason": "bad scores"})
    assert rollback.state == "success"
    assert _task_states(rollback)["train"] == "skipped"
    assert registry.aliases(engine, "toy")["champion"] == 1
    event = next(e for e in registry.events(engine, "toy") if e["event"] == "rollback")
    assert (event["from_version"], event["to_version"], event["reason"]) == (2, 1, "bad scores")
    assert any(a["kind"] == "rollback" for a in alerts.recent(engine, "toy"))


def test_the_plan_reads_the_specs_folder_the_dag_file_was_parsed_from(
        engine: sa.Engine, toy_dag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ML_BATCH_SPECS_DIR, the DAG file reads `include/models` next to its own folder, whatever the
    process's current directory. The plan task used to resolve the folder again from the current directory
    (the CLI's default), so a worker started elsewhere parsed the DAG and then failed its plan ("specs folder
    does not exist"). One rule now (`config.specs_dir`), resolved once when the file is parsed."""
    import shutil

    from airflow.dag_processing.dagbag import BundleDagBag

    spec, _ = toy_dag
    project = tmp_path / "project"
    (project / "dags").mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[2] / "dags" / "batch_predict.py", project / "dags")
    (project / "include" / "models").mkdir(parents=True)
    (project / "include" / "models" / "toy.yaml").write_text(
        yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    monkeypatch.delenv("ML_BATCH_SPECS_DIR")
    monkeypatch.chdir(tmp_path)  # the worker's current directory: not the project, no include/models here
    bag = BundleDagBag(dag_folder=project / "dags", bundle_path=project / "dags", bundle_name="dags-folder")
    assert not bag.import_errors, bag.import_errors
    plan = bag.dags["batch_predict_toy"].get_task("plan")
    pushed: dict[str, object] = {}

    class _TaskInstance:
        def xcom_push(self, key: str, value: object) -> None:
            pushed[key] = value

    class _DagRun:
        run_after = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
        run_type = "manual"

    shards = plan.python_callable(params={"date": DAY.isoformat()}, dag_run=_DagRun(), run_id="elsewhere",
                                  ti=_TaskInstance(), data_interval_start=None)  # what the task runner calls
    assert shards == [0]
    assert pushed["run_plan"]["spec_file"] == str((project / "include" / "models" / "toy.yaml").resolve())

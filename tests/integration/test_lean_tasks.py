"""Lean task bodies of the daily DAG (issue 12): no migration in a task (a schema-version check instead),
no heavy import in tasks that do not need it, the spec pinned by the plan, the model unpickled at most once
per process, and a normal run that logs no errors."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import SchemaNotAtHead, check_at_head, head_revision, shipped_head, upgrade
from ml_batch.demo import credit as demo
from ml_batch.errors import ArtifactIntegrityError
from ml_batch.model import registry
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run import runs
from ml_batch.spec import Spec, load_spec
from tests.integration.helpers import airflow_task_env, toy_spec
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class _TaskInstance:
    """What a task body uses of Airflow's task instance: `xcom_push`."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


class _DagRun:
    run_after = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
    run_type = "manual"


def _context(run_id: str) -> dict[str, Any]:
    return {"params": {"date": DAY.isoformat()}, "dag_run": _DagRun(), "run_id": run_id, "ti": _TaskInstance(),
            "outlet_events": None, "data_interval_start": None}


def _plan(model: str, run_id: str) -> dict[str, Any]:
    """Run the plan body as a task does; the run plan it hands to the later tasks."""
    from ml_batch.airflow import tasks

    context = _context(run_id)
    shards = tasks.plan(model, context, Path(os.environ["ML_BATCH_SPECS_DIR"]), f"batch_predict_{model}")
    run_plan = context["ti"].pushed[tasks.RUN_PLAN_KEY]
    assert shards == list(range(run_plan["shards"]))
    return run_plan


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Spec:
    spec = trained_toy(engine, settings.schema)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


# --- no migration in tasks: a schema-version check ---------------------------------------------------------


def test_head_is_read_from_the_revision_files_without_alembic() -> None:
    assert shipped_head() == head_revision()
    code = "import sys; from ml_batch.db.migrate import shipped_head; shipped_head(); print('alembic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_check_passes_at_head(engine: sa.Engine, settings: Settings) -> None:
    assert check_at_head(engine, settings.schema) == shipped_head()


def test_never_migrated_schema_names_the_command(pg_url: str, tmp_home: Path) -> None:
    settings = Settings(home=tmp_home, specs_dir=REPO / "include" / "models", schema="t_never_migrated",
                        database_url=pg_url, user="pytest")
    with pytest.raises(SchemaNotAtHead, match=r"at migration none \(never migrated\), expected "
                                              rf"{shipped_head()}.*run `ml-batch db upgrade` \(or the airflow-init"):
        check_at_head(make_engine(settings), settings.schema)


def _previous_revision() -> str:
    """The revision just before this ml-batch's head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(REPO / "ml_batch" / "db" / "migrations"))
    down = ScriptDirectory.from_config(config).get_revision("head").down_revision
    assert isinstance(down, str)
    return down


def test_task_on_a_schema_behind_head_fails_at_once_and_migrates_nothing(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    home = tmp_path / "home"
    home.mkdir()
    settings = Settings(home=home, specs_dir=REPO / "include" / "models", schema="t_behind_head",
                        database_url=pg_url, user="pytest")
    engine = make_engine(settings)
    behind = _previous_revision()
    upgrade(engine, settings.schema, behind)
    try:
        airflow_task_env(monkeypatch, settings, toy_spec(settings.schema), tmp_path)
        with pytest.raises(AirflowFailException) as failed:
            _plan("toy", "behind_head")
        message = str(failed.value)
        assert f"at migration {behind}, expected {shipped_head()}" in message
        assert "run `ml-batch db upgrade` (or the airflow-init service)" in message
        assert "deterministic, not retried" in message
        with engine.connect() as conn:  # the task did not migrate
            assert conn.execute(sa.text('SELECT version_num FROM "t_behind_head".alembic_version')).scalar() == behind
        # The command the message names brings the schema to the head.
        env = {**os.environ, "ML_BATCH_DATABASE_URL": pg_url, "ML_BATCH_SCHEMA": settings.schema,
               "ML_BATCH_HOME": str(home)}
        subprocess.run([sys.executable, "-m", "ml_batch.cli", "db", "upgrade"], env=env, check=True,
                       capture_output=True, text=True, timeout=300)
        assert check_at_head(engine, settings.schema) == shipped_head()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text('DROP SCHEMA IF EXISTS "t_behind_head" CASCADE'))


# --- imports only of what a task uses ----------------------------------------------------------------------

# What a task process runs for one body; it must not import this test module (which imports training).
_BODY = """
import datetime as dt, json, os, pathlib, sys
from ml_batch.airflow import tasks
what, day = sys.argv[1], dt.date.fromisoformat(sys.argv[2])
class TI:
    pushed = {}
    def xcom_push(self, key, value): self.pushed[key] = value
class DagRun:
    run_after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
    run_type = "manual"
context = {"params": {"date": day.isoformat()}, "dag_run": DagRun(), "run_id": "lean_imports", "ti": TI(),
           "outlet_events": None, "data_interval_start": None}
if what == "plan":
    out = tasks.plan("toy", context, pathlib.Path(os.environ["ML_BATCH_SPECS_DIR"]), "batch_predict_toy")
    out = out if isinstance(out, dict) else TI.pushed[tasks.RUN_PLAN_KEY]
else:
    out = tasks.publish("toy", json.loads(sys.argv[3]), context, None)
heavy = sorted(m for m in ("sklearn", "great_expectations") if m in sys.modules)
print(json.dumps({"heavy": heavy, "out": out}))
"""


def _run_body(what: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", _BODY, what, DAY.isoformat(), *args], capture_output=True,
                          text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_plan_and_publish_bodies_import_neither_sklearn_nor_great_expectations(toy: Spec) -> None:
    from ml_batch.airflow import tasks

    planned = _run_body("plan")
    run_plan = planned["out"]
    for shard in range(run_plan["shards"]):
        tasks.score("toy", run_plan, shard)  # in this process: scoring does need sklearn and GX
    published = _run_body("publish", json.dumps(run_plan))
    assert published["out"]["status"] == "success" and published["out"]["scored"] == 80
    assert (planned["heavy"], published["heavy"]) == ([], [])


# --- the spec pinned by the plan ---------------------------------------------------------------------------


def test_spec_edit_between_plan_and_score_does_not_change_the_run(toy: Spec, engine: sa.Engine) -> None:
    from ml_batch.airflow import tasks

    spec_file = Path(os.environ["ML_BATCH_SPECS_DIR"]) / "toy.yaml"
    planned_text = spec_file.read_text()
    run_plan = _plan("toy", "pinned_spec")
    # Mid-run edits: an invalid spec, then a valid one that points the predictions elsewhere.
    spec_file.write_text(planned_text + "\nno_such_field: 1\n")
    result = tasks.score("toy", run_plan, 0)
    moved = toy.model_copy(update={"predictions": toy.predictions.model_copy(
        update={"table": f"{toy.predictions.table}_moved"})})
    spec_file.write_text(json.dumps(moved.model_dump(mode="json", exclude_none=True)))
    summary = tasks.publish("toy", run_plan, _context("pinned_spec"), None)

    assert (result["scored"], summary["status"], summary["scored"]) == (80, "success", 80)
    with engine.connect() as conn:
        published = conn.execute(sa.text(f"SELECT count(*) FROM {toy.predictions.table} "
                                         "WHERE run_id = 'pinned_spec'")).scalar()
        recorded = runs.get(conn, "toy", "pinned_spec")
    assert published == 80
    assert recorded is not None
    assert recorded["spec_sha256"] == hashlib.sha256(planned_text.encode()).hexdigest() == run_plan["spec_sha256"]


def test_plan_reads_only_its_models_spec_file(toy: Spec, settings: Settings) -> None:
    # Another model's spec file, broken: the plan reads only its own model's file.
    (Path(os.environ["ML_BATCH_SPECS_DIR"]) / "other.yaml").write_text("name: other\nnot: a valid spec\n")
    run_plan = _plan("toy", "one_spec_file")
    assert load_spec(Path(run_plan["spec_file"])).name == "toy"


# --- the model unpickled at most once per process ----------------------------------------------------------


def test_model_is_unpickled_once_per_process_and_verified_every_time(
        toy: Spec, engine: sa.Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import joblib

    unpickled: list[int] = []
    real_load = joblib.load
    monkeypatch.setattr(joblib, "load", lambda f, *a, **k: unpickled.append(1) or real_load(f, *a, **k))
    monkeypatch.setattr(registry, "_LOADED", {})
    first = registry.load(engine, toy, 1)
    again = registry.load(engine, toy, "champion")
    assert again.pipeline is first.pipeline and len(unpickled) == 1

    # Bytes replaced afterwards (sha256 updated, HMAC not) are still refused: verification runs on every load.
    table = f'"{settings.schema}".model_versions'
    with engine.begin() as conn:
        artifact = bytes(conn.execute(sa.text(f"SELECT artifact FROM {table} WHERE model_name = 'toy' "
                                              "AND version = 1")).scalar_one()) + b"\0"
        conn.execute(sa.text(f"UPDATE {table} SET artifact = :a, artifact_sha256 = :s WHERE model_name = 'toy' "
                             "AND version = 1"), {"a": artifact, "s": hashlib.sha256(artifact).hexdigest()})
    with pytest.raises(ArtifactIntegrityError, match="HMAC"):
        registry.load(engine, toy, 1)
    assert len(unpickled) == 1


# --- a normal run logs no errors ---------------------------------------------------------------------------


@pytest.fixture()
def credit(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           airflow_db: None) -> Spec:
    shipped = load_spec(REPO / "include" / "models" / "credit_default.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.credit_default"}),
    })
    demo.seed(engine, demo.DemoConfig(end_date=DAY, days=60, rows_per_day=300,
                                      label_delay_days=spec.labels.delay_days))
    train_and_register(engine, spec, DAY, actor="t", promote=True)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


def test_a_normal_run_of_the_demo_model_logs_no_errors(credit: Spec, caplog: pytest.LogCaptureFixture,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    from ml_batch.airflow.dag_factory import build_dag

    dag = build_dag(credit)
    for task in dag.tasks:
        task.retries = 0
    with caplog.at_level(logging.INFO):
        run = dag.test(logical_date=dt.datetime.combine(DAY, dt.time(6), tzinfo=dt.UTC))
    out, err = capfd.readouterr()
    assert run.state == "success"
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    errors += [line for line in (out + err).splitlines() if "[error" in line or " ERROR " in line]
    assert errors == []

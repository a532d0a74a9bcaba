"""Issue 15: an Airflow retry of the retraining task is harmless.

The first try of `train` fails after it has registered (or even promoted) its candidate: a trigger makes
PostgreSQL refuse one insert, a transient failure that Airflow retries. The retry must reuse the version
that the run registered, gate it once, and never gate it against itself.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.model import registry
from ml_batch.ops import alerts
from tests.integration.helpers import airflow_task_env, load_toy_data, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=40)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


def _fail_first_insert(engine: sa.Engine, schema: str, table: str, condition: str) -> None:
    """Make PostgreSQL refuse the first insert into `table` matching `condition` (later ones pass).

    A sequence counts the tries: `nextval` is not rolled back with the failing statement.
    """
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SEQUENCE "{schema}".injected_failures'))
        conn.execute(sa.text(f"""
            CREATE FUNCTION "{schema}".fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF {condition} AND nextval('"{schema}".injected_failures') = 1 THEN
                RAISE EXCEPTION 'injected failure: the connection broke after this step';
              END IF;
              RETURN NEW;
            END $$"""))
        conn.execute(sa.text(f'CREATE TRIGGER fail_once BEFORE INSERT ON "{schema}".{table} '
                             f'FOR EACH ROW EXECUTE FUNCTION "{schema}".fail_once()'))


def _retrain_dag_with_fast_retries(spec: Any) -> Any:
    from ml_batch.airflow.dag_factory import build_retrain_dag

    dag = build_retrain_dag(spec)
    for task in dag.tasks:
        assert task.retries == 2, "the production retry policy is what this test exercises"
        task.retry_delay = dt.timedelta(seconds=1)
        task.retry_exponential_backoff = 0
    return dag


def _train_try(run: Any) -> tuple[str, int]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id,
                                                TaskInstance.task_id == "train").one()
        return str(ti.state), ti.try_number


@pytest.mark.parametrize(("table", "condition"), [
    ("model_events", "NEW.event = 'gate_decision'"),  # fails after the candidate was registered
    # fails while the candidate is being promoted (an alert the database refuses no longer fails the task:
    # alerts are delivered first and recorded best-effort, see tests/reliability/test_alerts_without_database.py)
    ("model_events", "NEW.event = 'promoted'"),
], ids=["after-register", "during-promote"])
def test_a_retried_training_task_reuses_its_version_and_gates_it_once(
    settings: Settings, engine: sa.Engine, toy, table: str, condition: str,
) -> None:
    _fail_first_insert(engine, settings.schema, table, condition)
    run = _retrain_dag_with_fast_retries(toy).test(logical_date=None, run_conf={"as_of": AS_OF.isoformat()})
    assert run.state == "success"
    assert _train_try(run) == ("success", 2), "the first try must have failed and been retried"
    assert [v.version for v in registry.list_versions(engine, "toy")] == [1], "a retry registered another version"
    events = registry.events(engine, "toy")
    decisions = [e for e in events if e["event"] == "gate_decision"]
    assert len(decisions) == 1 and decisions[0]["to_version"] == 1
    assert decisions[0]["details"]["champion_score"] is None, "gated against the version it had just promoted"
    assert decisions[0]["details"]["run_id"] == run.run_id
    assert [e["to_version"] for e in events if e["event"] == "promoted"] == [1]
    assert registry.aliases(engine, "toy") == {"champion": 1}
    assert [a["kind"] for a in alerts.recent(engine, "toy")].count("gate_promote") == 1

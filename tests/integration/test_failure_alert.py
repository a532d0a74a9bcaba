"""The daily DAG's failure alert under real Airflow (`dag.test()`): it names the day being scored and is stored
with it (`ml_batch.airflow.notifiers.failure_alert` on the context Airflow really hands a DAG callback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.ops import alerts
from tests.integration.helpers import airflow_task_env
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration


def test_a_failed_run_alerts_with_its_day_and_the_failing_task(
    settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: None
) -> None:
    from ml_batch.airflow import dag_factory

    spec = trained_toy(engine, settings.schema)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    strict = spec.model_copy(update={"validation": spec.validation.model_copy(update={"min_rows": 500})})
    specs_dir = tmp_path / "strict"
    specs_dir.mkdir()
    (specs_dir / "toy.yaml").write_text(yaml.safe_dump(strict.model_dump(mode="json")))
    monkeypatch.setenv("ML_BATCH_SPECS_DIR", str(specs_dir))
    dag = dag_factory.build_dag(spec)
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=None, run_conf={"date": DAY.isoformat()})
    assert run.state == "failed"
    [alert] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "run_failure"]
    assert alert["partition_date"] == DAY
    assert alert["message"].startswith(f"batch_predict_toy run {run.run_id} failed in task ")
    assert alert["message"].endswith(f"; day {DAY}")
    assert alert["details"]["day"] == DAY.isoformat() and alert["details"]["task_id"] in alert["message"]

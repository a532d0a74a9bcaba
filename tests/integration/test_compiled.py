"""The compiled scoring path end to end: a tree model compiled at training, the daily DAG in real Airflow
(`dag.test()`) scoring with its library, publishing exactly the rows scikit-learn publishes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.tables import model_versions
from ml_batch.demo import stores as demo_stores
from ml_batch.errors import ArtifactIntegrityError
from ml_batch.model import registry
from ml_batch.model.compiled import COMPILE_ENV, TOLERANCE
from ml_batch.model.scorer import scoring_path
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.runs import list_runs
from ml_batch.spec import Spec, load_spec
from tests.integration.helpers import airflow_task_env, run_daily_dag

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
DAY = LAST - dt.timedelta(days=6)
CONFIG = demo_stores.StoreDemandConfig(end_date=LAST, days=80, stores=60)


@pytest.fixture()
def stores(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           airflow_db: None) -> Spec:
    shipped = load_spec(REPO / "include" / "models" / "store_demand.yaml")  # HistGradientBoostingRegressor
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.store_demand"}),
        "validation": shipped.validation.model_copy(update={"min_rows": CONFIG.stores}),
    })
    demo_stores.seed(engine, CONFIG)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    return spec


def _score_day(spec: Spec) -> str:
    return str(run_daily_dag(spec, DAY).state)


def _published(engine: sa.Engine, spec: Spec) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(f"SELECT store_id, partition_date, score, predicted_label, model_version "
                                   f"FROM {spec.predictions.table} ORDER BY store_id"), conn)


def test_the_daily_dag_scores_with_the_compiled_library_and_publishes_scikit_learns_rows(
        engine: sa.Engine, stores: Spec, monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = train_and_register(engine, stores, LAST, actor="t", promote=True)
    record = outcome.version.compiled
    assert record is not None and record["status"] == "compiled", record
    assert record["max_abs_diff"] <= TOLERANCE and record["holdout_rows"] == outcome.version.n_holdout
    print(f"compile store_demand (HistGradientBoostingRegressor): {record['compile_seconds']}s, "
          f"{record['library_size']} bytes")

    assert _score_day(stores) == "success"
    compiled_rows = _published(engine, stores)
    monkeypatch.setenv(COMPILE_ENV, "0")  # the same day again, by scikit-learn
    assert _score_day(stores) == "success"
    sklearn_rows = _published(engine, stores)

    assert [(r["scoring_path"], r["status"]) for r in list_runs(engine, "store_demand")] == [
        ("sklearn", "success"), ("compiled", "success")]  # newest first
    assert len(compiled_rows) == CONFIG.stores
    pd.testing.assert_frame_equal(compiled_rows.drop(columns="score"), sklearn_rows.drop(columns="score"))
    assert np.abs(compiled_rows["score"].to_numpy() - sklearn_rows["score"].to_numpy()).max() <= TOLERANCE


def test_a_tampered_library_fails_scoring_before_it_is_loaded(engine: sa.Engine, stores: Spec) -> None:
    train_and_register(engine, stores, LAST, actor="t", promote=True)
    with engine.begin() as conn:
        library = conn.execute(sa.select(model_versions.c.compiled_library)).scalar_one()
        changed = bytes(library[:-1]) + bytes([library[-1] ^ 0xFF])
        conn.execute(model_versions.update().values(compiled_library=changed))
    loaded = registry.load(engine, stores)
    with pytest.raises(ArtifactIntegrityError, match="compiled library: library sha256 is"), \
            scoring_path(engine, loaded, nthread=1):
        pass
    assert _score_day(stores) == "failed"
    assert "compiled library: library sha256 is" in (list_runs(engine, "store_demand")[0]["error"] or "")

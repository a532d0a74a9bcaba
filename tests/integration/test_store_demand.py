"""The recurring-entity demo model (`store_demand`) end to end: seeded source, training on one row per store
and day, the daily DAG in real Airflow (`dag.test()`), realized MAE against each day's own sales."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import mean_absolute_error

from ml_batch.config import Settings
from ml_batch.demo import stores as demo_stores
from ml_batch.monitoring.performance import performance_table
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.runs import list_runs
from ml_batch.spec import Spec, load_spec
from tests.integration.helpers import airflow_task_env, run_daily_dag

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
CONFIG = demo_stores.StoreDemandConfig(end_date=LAST, days=80, stores=60)


@pytest.fixture()
def stores(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
           airflow_db: None) -> Spec:
    shipped = load_spec(REPO / "include" / "models" / "store_demand.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.store_demand"}),
        "validation": shipped.validation.model_copy(update={"min_rows": CONFIG.stores}),
    })
    demo_stores.seed(engine, CONFIG)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


def test_store_demand_trains_on_one_row_per_store_and_day_and_scores_every_store_daily(
        engine: sa.Engine, stores: Spec) -> None:
    outcome = train_and_register(engine, stores, LAST, actor="t", promote=True)
    # window: 56 days ending LAST - 7, every store on every day: 42 x 60 training rows, 14 x 60 holdout rows
    assert (outcome.version.n_train, outcome.version.n_holdout) == (42 * 60, 14 * 60)
    assert outcome.promoted

    labelled_day, day = LAST - dt.timedelta(days=13), LAST - dt.timedelta(days=6)
    for d in (labelled_day, day):
        assert run_daily_dag(stores, d).state == "success"
    with engine.connect() as conn:
        published = pd.read_sql(sa.text(
            f"SELECT store_id, partition_date, score, model_version FROM {stores.predictions.table} ORDER BY 2, 1"),
            conn)
        sales = pd.read_sql(sa.text("SELECT store_id, units FROM demo.store_sales WHERE sales_date = :d"), conn,
                            params={"d": labelled_day})
        latest = conn.execute(sa.text(
            f"SELECT count(*), min(partition_date) FROM {stores.predictions.table}_latest")).one()
    assert published.groupby("partition_date").size().to_dict() == {labelled_day: 60, day: 60}
    assert set(published["model_version"]) == {1}
    assert tuple(latest) == (60, day)  # the latest forecast per store: one row per store, all from `day`

    # the run for `day` records realized performance of `day - 7` against that day's own sales
    mae = [r for r in performance_table(engine, "store_demand") if r["metric"] == "mae"]
    assert [(r["partition_date"], r["n"], r["detail"]["kind"]) for r in mae] == [(labelled_day, 60, "published")]
    scored = published[published["partition_date"] == labelled_day].merge(sales, on="store_id",
                                                                           validate="one_to_one")
    assert mae[0]["value"] == pytest.approx(mean_absolute_error(scored["units"], scored["score"]), abs=1e-9)
    assert [r["status"] for r in list_runs(engine, "store_demand")] == ["success", "success"]

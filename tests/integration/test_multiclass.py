"""A multiclass model end to end (issue 25): the seeded ticket-queue source, training on class names, the daily
DAG in real Airflow (`dag.test()`), every published row a probability per class with its argmax as the label,
and the realized log loss of a labelled day against scikit-learn's on the same rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import log_loss

from ml_batch.config import Settings
from ml_batch.demo import tickets as demo_tickets
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.runs import list_runs
from ml_batch.spec import Spec, load_spec
from tests.integration.helpers import airflow_task_env, run_daily_dag

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
CONFIG = demo_tickets.TicketQueueConfig(end_date=LAST, days=40, rows_per_day=300)
# Trained on the labels known on AS_OF (window ending AS_OF - 3); the two scored days come after it, and the run
# for DAY records the realized metrics of LABELLED_DAY = DAY - labels.delay_days.
AS_OF = LAST - dt.timedelta(days=5)
DAY = LAST - dt.timedelta(days=1)
LABELLED_DAY = DAY - dt.timedelta(days=3)


@pytest.fixture()
def queue(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          airflow_db: None) -> Spec:
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.ticket_queue"}),
    })
    demo_tickets.seed(engine, CONFIG)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


def _published(engine: sa.Engine, spec: Spec) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(
            f"SELECT ticket_id, partition_date, score, predicted_label, class_scores, model_version "
            f"FROM {spec.predictions.table} ORDER BY 2, 1"), conn)


def test_a_multiclass_day_publishes_every_class_probability_with_the_argmax_label(
        engine: sa.Engine, queue: Spec) -> None:
    outcome = train_and_register(engine, queue, AS_OF, actor="t", promote=True)
    assert outcome.promoted and outcome.version.classes == sorted(demo_tickets.QUEUES)
    for day in (LABELLED_DAY, DAY):
        assert run_daily_dag(queue, day).state == "success"
    published = _published(engine, queue)
    with engine.connect() as conn:
        source = conn.execute(sa.text(
            "SELECT opened_at::date AS day, count(*) FROM demo.tickets WHERE opened_at::date IN (:a, :b) "
            "GROUP BY 1"), {"a": LABELLED_DAY, "b": DAY}).all()
        label_type = conn.execute(sa.text(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(:t) AND attname = 'predicted_label'"),
            {"t": queue.predictions.table}).scalar_one()
    assert published.groupby("partition_date").size().to_dict() == dict(source)
    assert set(published["model_version"]) == {1} and label_type == "text"

    classes = sorted(demo_tickets.QUEUES)
    probabilities = np.array([[row[c] for c in classes] for row in published["class_scores"]])
    assert all(sorted(row) == classes for row in published["class_scores"]), "every class, no other"
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    top = probabilities.max(axis=1)
    label_p = np.array([row[label] for row, label in zip(published["class_scores"], published["predicted_label"],
                                                         strict=True)])
    assert (label_p == top).all(), "predicted_label is a class of maximal probability"
    assert (published["score"].to_numpy() == label_p).all(), "score is exactly the label's probability"
    assert published["predicted_label"].nunique() >= 3, "the model predicts more than one or two queues"
    assert [r["status"] for r in list_runs(engine, "ticket_queue")] == ["success", "success"]


def test_the_realized_log_loss_of_a_labelled_day_is_sklearns_on_the_joined_rows(
        engine: sa.Engine, queue: Spec) -> None:
    """Depends on monitoring's multiclass realized metrics (`ml_batch.monitoring.performance`, helper O)."""
    from ml_batch.monitoring.performance import performance_table

    train_and_register(engine, queue, AS_OF, actor="t", promote=True)
    for day in (LABELLED_DAY, DAY):
        assert run_daily_dag(queue, day).state == "success"
    published = _published(engine, queue)
    with engine.connect() as conn:
        labels = pd.read_sql(sa.text("SELECT ticket_id, queue FROM demo.ticket_queues"), conn)
    day_rows = published[published["partition_date"] == LABELLED_DAY].merge(labels, on="ticket_id",
                                                                            validate="one_to_one")
    classes = sorted(demo_tickets.QUEUES)
    probabilities = np.array([[row[c] for c in classes] for row in day_rows["class_scores"]])
    realized = {r["metric"]: r for r in performance_table(engine, "ticket_queue")
                if r["partition_date"] == LABELLED_DAY and r["detail"].get("kind") == "published"}
    assert realized["log_loss"]["n"] == len(day_rows) > 100
    assert realized["log_loss"]["value"] == pytest.approx(
        log_loss(day_rows["queue"], probabilities, labels=classes), abs=1e-9)
    assert realized["accuracy"]["value"] == pytest.approx(
        float((day_rows["predicted_label"] == day_rows["queue"]).mean()), abs=1e-12)

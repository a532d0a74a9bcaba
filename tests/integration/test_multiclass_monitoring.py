"""Monitoring of a multiclass model on real PostgreSQL: the ticket-queue demo trained, two days scored and
published (one before the outage, one during it), their drift checked against the version's class profile, and
the realized metrics of a labelled day, one of whose labels names a queue the version never saw."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import accuracy_score, log_loss

from ml_batch.config import Settings
from ml_batch.demo import tickets as demo_tickets
from ml_batch.model import registry
from ml_batch.monitoring.classes import class_probabilities
from ml_batch.monitoring.daily import check_day_drift, drift_table
from ml_batch.monitoring.estimate import MULTICLASS_UNAVAILABLE
from ml_batch.monitoring.inputs import PREDICTED_CLASS
from ml_batch.monitoring.performance import performance_table, realized_performance
from ml_batch.monitoring.status import model_status
from ml_batch.ops.alerts import recent
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
CONFIG = demo_tickets.TicketQueueConfig(end_date=LAST, days=40, rows_per_day=300)
AS_OF = CONFIG.shift_start - dt.timedelta(days=1)  # trained before the outage
CALM = CONFIG.shift_start - dt.timedelta(days=1)  # a day like the holdout
OUTAGE = LAST - dt.timedelta(days=1)  # more technical tickets, through the phone


@pytest.fixture()
def queue(settings: Settings, engine: sa.Engine) -> Spec:
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    spec = shipped.model_copy(update={
        "predictions": shipped.predictions.model_copy(update={"table": f"{settings.schema}.ticket_queue"}),
    })
    demo_tickets.seed(engine, CONFIG)
    outcome = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert outcome.promoted
    # The demo's outage moves the labels more than the features (its predicted mix moves by a JS distance of
    # 0.08, under the 0.1 threshold): make half of the day's tickets look technical (long, with attachments),
    # so that the model predicts "technical" far more often.
    with engine.begin() as conn:
        conn.execute(sa.text(
            "UPDATE demo.tickets SET message_length = LEAST(message_length * 4, 20000), attachments = attachments + 3 "
            "WHERE opened_at >= :d AND opened_at < :d + 1 AND ticket_id % 2 = 0"), {"d": OUTAGE})
    for day in (CALM, OUTAGE):
        score_day(engine, spec, day, run_id=f"r-{day}")
    return spec


def _joined(engine: sa.Engine, spec: Spec, day: dt.date) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(
            f"SELECT p.ticket_id, p.class_scores, q.queue FROM {spec.predictions.table} p "
            "JOIN demo.ticket_queues q USING (ticket_id) WHERE p.partition_date = :d ORDER BY 1"), conn,
            params={"d": day})


def test_the_outage_is_class_drift_and_the_calm_day_is_not(engine: sa.Engine, queue: Spec) -> None:
    version = registry.get_version(engine, queue.name, 1)
    profile = registry.reference_profile(engine, queue.name, 1)
    assert profile is not None and profile["classes"]["names"] == version.classes

    calm = check_day_drift(engine, queue, CALM, run_id="d1", raise_alerts=False)
    outage = check_day_drift(engine, queue, OUTAGE, run_id="d2", raise_alerts=False)
    assert calm.class_drift is False
    assert outage.class_drift is True
    _, rows = drift_table(engine, queue.name, OUTAGE)
    by_test = {r["test"]: (r["drifted"], r["detail"]) for r in rows if r["feature"] == PREDICTED_CLASS}
    assert set(by_test) == {"psi", "js", "chi2"}
    shares = dict(zip(by_test["psi"][1]["labels"], by_test["psi"][1]["current"], strict=True))
    reference = dict(zip(by_test["psi"][1]["labels"], by_test["psi"][1]["reference"], strict=True))
    assert shares[demo_tickets.SHIFTED_QUEUE] > reference[demo_tickets.SHIFTED_QUEUE]

    # A pooled window (the calm day and the outage) reads every day's class probabilities too.
    pooled = queue.model_copy(update={"drift": queue.drift.model_copy(update={"window_days": 7})})
    window = check_day_drift(engine, pooled, OUTAGE, run_id="d3", raise_alerts=False)
    assert window.window_days == 7 and window.class_drift is True

    # No label-free estimate for a multiclass model: stored and shown as unavailable, with the reason.
    assert outage.estimated == {"estimated_log_loss": None}
    assert outage.estimate_reliable is False and outage.estimate_reasons == (MULTICLASS_UNAVAILABLE,)


def test_realized_log_loss_is_sklearns_and_an_unseen_queue_is_counted_and_alerted(
        engine: sa.Engine, queue: Spec) -> None:
    classes = registry.get_version(engine, queue.name, 1).classes
    assert classes is not None
    with engine.begin() as conn:  # three tickets of the calm day are resolved in a queue the model never saw
        conn.execute(sa.text(
            f"UPDATE demo.ticket_queues SET queue = 'refunds' WHERE ticket_id IN (SELECT ticket_id FROM "
            f"{queue.predictions.table} WHERE partition_date = :d ORDER BY ticket_id LIMIT 3)"), {"d": CALM})
    records = realized_performance(engine, queue, CALM + dt.timedelta(days=queue.labels.delay_days), run_id="p1")

    joined = _joined(engine, queue, CALM)
    seen = joined[joined["queue"] != "refunds"]
    proba = class_probabilities(seen["class_scores"], classes, "joined rows")
    realized = {r["metric"]: r for r in performance_table(engine, queue.name) if r["partition_date"] == CALM}
    assert realized["log_loss"]["value"] == pytest.approx(log_loss(seen["queue"], proba, labels=classes), abs=1e-9)
    assert realized["accuracy"]["value"] == pytest.approx(
        accuracy_score(seen["queue"], np.asarray(classes)[proba.argmax(axis=1)]), abs=1e-9)
    assert realized["log_loss"]["n"] == len(seen) == len(joined) - 3
    assert realized["log_loss"]["detail"]["unseen_classes"] == {"refunds": 3}
    assert {r["metric"] for r in records} == {"log_loss", "accuracy", "macro_f1", "roc_auc_ovr",
                                              "balanced_accuracy"}

    unseen = [a for a in recent(engine, queue.name) if a["kind"] == "unseen_class"]
    assert len(unseen) == 1 and "'refunds' (3 rows)" in unseen[0]["message"]
    assert unseen[0]["details"]["n_unseen"] == 3

    (status,) = model_status(engine, [queue], now=dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC))
    assert (status.metric, status.realized_day) == ("log_loss", CALM)
    assert status.realized == pytest.approx(realized["log_loss"]["value"])
    # log loss is lower-is-better: the floor 1.2 is a ceiling
    assert status.realized_meets_floor is (status.realized <= 1.2)

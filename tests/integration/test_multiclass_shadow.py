"""Shadow scoring and the shadow promotion of a multiclass model on real PostgreSQL (issue 25, item 3): the
ticket-queue demo's champion and challenger, the challenger's class probabilities stored per shadow row, the
day's comparison, both models' realized log loss once the labels arrive, and `promote_after_shadow` promoting
a better challenger and demoting a worse one on that labelled evidence."""

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
from ml_batch.model import registry
from ml_batch.monitoring.classes import class_probabilities
from ml_batch.monitoring.performance import realized_performance
from ml_batch.monitoring.shadow import shadow_score
from ml_batch.promotion.retrain import train_and_register
from ml_batch.promotion.shadow import promote_after_shadow
from ml_batch.run.day import score_day
from ml_batch.spec import Spec, load_spec

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LAST = dt.date(2026, 6, 30)
CONFIG = demo_tickets.TicketQueueConfig(end_date=LAST, days=50, rows_per_day=150, shift_days=0)
AS_OF = LAST - dt.timedelta(days=14)  # ten shadow days after it, each labelled by LAST
DELAY = CONFIG.label_delay_days
SHADOW = {"shadow_days": 5, "shadow_min_labelled_days": 2, "shadow_max_days": 7}


def _spec(settings: Settings) -> Spec:
    shipped = load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")
    assert shipped.labels.delay_days == DELAY
    return Spec.model_validate(shipped.model_dump(mode="json") | {
        "predictions": {**shipped.predictions.model_dump(mode="json"), "table": f"{settings.schema}.ticket_queue"},
        "training": {**shipped.training.model_dump(mode="json"), **SHADOW}})


def _dummy(spec: Spec) -> Spec:
    """The same model spec with a model that predicts the class shares whatever the ticket (no skill)."""
    return spec.model_copy(update={"model": spec.model.model_copy(update={
        "estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}})})


def _shadow(engine: sa.Engine, spec: Spec, offsets: range) -> list[dict]:
    """Score, shadow-score and (once labelled) record realized metrics of days AS_OF + offset."""
    comparisons = []
    for offset in offsets:
        day = AS_OF + dt.timedelta(days=offset)
        score_day(engine, spec, day, run_id=f"d{offset}")
        comparison = shadow_score(engine, spec, day, run_id=f"d{offset}")
        assert comparison is not None
        comparisons.append(comparison)
        realized_performance(engine, spec, day + dt.timedelta(days=DELAY), run_id=f"p{offset}")
    return comparisons


def _rows(engine: sa.Engine, spec: Spec, schema: str, day: dt.date, challenger: int) -> pd.DataFrame:
    """The day's shadow rows next to the published ones and the label."""
    with engine.connect() as conn:
        return pd.read_sql(sa.text(
            "SELECT s.entity_key, s.score, s.predicted_class, s.predicted_label, s.class_scores, "
            "p.predicted_label AS published_class, p.class_scores AS published_scores, q.queue "
            f'FROM "{schema}".shadow_predictions s '
            f"JOIN {spec.predictions.table} p ON p.ticket_id::text = s.entity_key AND p.partition_date = :d "
            "JOIN demo.ticket_queues q ON q.ticket_id = p.ticket_id "
            "WHERE s.model_name = :m AND s.partition_date = :d AND s.model_version = :v ORDER BY 1"), conn,
            params={"d": day, "m": spec.name, "v": challenger})


def _comparison(engine: sa.Engine, spec: Spec, schema: str, day: dt.date) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            f'SELECT * FROM "{schema}".shadow_comparisons WHERE model_name = :m AND partition_date = :d'),
            {"m": spec.name, "d": day}).mappings().one())


def test_a_multiclass_challenger_is_shadow_scored_judged_on_labels_then_promoted_or_demoted(
        settings: Settings, engine: sa.Engine) -> None:
    spec = _spec(settings)
    demo_tickets.seed(engine, CONFIG)
    weak = train_and_register(engine, _dummy(spec), AS_OF, actor="t").version.version
    registry.promote(engine, spec.name, weak, actor="t", reason="bootstrap champion")
    good = train_and_register(engine, spec, AS_OF, actor="t").version.version
    registry.promote(engine, spec.name, good, alias=registry.CHALLENGER, actor="t", reason="shadow test")
    classes = registry.get_version(engine, spec.name, good).classes
    assert classes is not None and sorted(classes) == sorted(demo_tickets.QUEUES)

    comparisons = _shadow(engine, spec, range(1, 6))

    # Every shadow row holds every class of the challenger, summing to 1, its top class and that probability.
    first = AS_OF + dt.timedelta(days=1)
    rows = _rows(engine, spec, settings.schema, first, good)
    with engine.connect() as conn:
        published = conn.execute(sa.text(f"SELECT count(*) FROM {spec.predictions.table} WHERE partition_date = :d"),
                                 {"d": first}).scalar_one()
    assert len(rows) == published > 0
    proba = class_probabilities(rows["class_scores"], classes, "shadow rows")
    assert all(set(s) == set(classes) for s in rows["class_scores"])
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert rows["predicted_class"].tolist() == np.asarray(classes)[proba.argmax(axis=1)].tolist()
    assert np.array_equal(rows["score"].to_numpy(), proba.max(axis=1))
    assert rows["predicted_label"].isna().all()

    # The comparison: the share of rows with the champion's published class; no score correlation.
    comparison = _comparison(engine, spec, settings.schema, first)
    assert comparisons[0]["agreement"] == pytest.approx((rows["predicted_class"] == rows["published_class"]).mean())
    assert comparison["agreement"] == pytest.approx(comparisons[0]["agreement"])
    assert comparison["score_correlation"] is None and comparison["n"] == len(rows)
    assert (comparison["champion_version"], comparison["challenger_version"]) == (weak, good)

    # Realized metrics followed the labels: both models' log loss on the same labelled rows, as sklearn has it.
    champion_classes = registry.get_version(engine, spec.name, weak).classes
    assert champion_classes is not None
    champion_proba = class_probabilities(rows["published_scores"], champion_classes, "published rows")
    assert comparison["metric"] == "log_loss" and comparison["labelled_n"] == len(rows)
    assert comparison["challenger_metric"] == pytest.approx(log_loss(rows["queue"], proba, labels=classes), abs=1e-9)
    assert comparison["champion_metric"] == pytest.approx(
        log_loss(rows["queue"], champion_proba, labels=champion_classes), abs=1e-9)
    assert comparison["challenger_metric"] < comparison["champion_metric"]

    promoted = promote_after_shadow(engine, spec, actor="t")
    assert promoted is not None and promoted.action == "promoted", promoted
    assert promoted.metric == "log_loss" and promoted.labelled_days == 5
    assert promoted.challenger_realized is not None and promoted.champion_realized is not None
    assert promoted.challenger_realized < promoted.champion_realized  # lower log loss is better
    assert registry.aliases(engine, spec.name) == {"champion": good}

    # A challenger with no skill is worse than the new champion on the same labelled rows: demoted.
    bad = train_and_register(engine, _dummy(spec), AS_OF, actor="t").version.version
    registry.promote(engine, spec.name, bad, alias=registry.CHALLENGER, actor="t", reason="shadow test")
    _shadow(engine, spec, range(6, 11))
    demoted = promote_after_shadow(engine, spec, actor="t")
    assert demoted is not None and demoted.action == "demoted", demoted
    assert "worse than the champion" in demoted.reason
    assert demoted.challenger_realized is not None and demoted.champion_realized is not None
    assert demoted.challenger_realized > demoted.champion_realized
    assert registry.aliases(engine, spec.name) == {"champion": good}

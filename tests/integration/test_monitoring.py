"""Drift, delayed-label performance, shadow scoring, the retraining gate and alerts, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ml_batch import alerts, registry
from ml_batch.config import Settings
from ml_batch.jobs import promote_after_shadow, train_and_register
from ml_batch.monitoring import check_day_drift, drift_table, realized_performance, shadow_score
from ml_batch.scoring import score_day
from ml_batch.spec import Spec
from ml_batch.training import load_labelled, split, window_for
from tests.integration.helpers import load_toy_data, toy_spec

pytestmark = pytest.mark.integration

FIRST = dt.date(2026, 5, 1)
AS_OF = dt.date(2026, 5, 20)
DELAY = 3


def _open_spec(schema: str, **training: object) -> Spec:
    """The toy spec without a category whitelist (so a new category is drift, not quarantine)."""
    spec = toy_spec(schema, delay_days=DELAY)
    features = [f.model_copy(update={"categories": None}) if f.name == "color" else f for f in spec.features]
    return spec.model_copy(update={
        "features": features,
        "training": spec.training.model_copy(update=training),
        "validation": spec.validation.model_copy(update={"max_quarantine_share": 0.5}),
    })


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    spec = _open_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=300, delay_days=DELAY)
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    return spec


def _alerts(engine: sa.Engine, kind: str) -> list[dict]:
    return [a for a in alerts.recent(engine, "toy") if a["kind"] == kind]


def test_no_false_alarm_on_days_from_the_reference_distribution(settings: Settings, engine: sa.Engine) -> None:
    # Realistic day sizes: at a few hundred rows a day, KS D alone wanders past 0.1 by chance (the README
    # says the thresholds assume days of at least ~1,000 rows).
    toy = _open_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=28, rows_per_day=1500, delay_days=DELAY, seed=3)
    assert train_and_register(engine, toy, AS_OF, actor="t", promote=True).promoted
    for offset in range(8):
        day = AS_OF + dt.timedelta(days=offset)
        score_day(engine, toy, day, run_id=f"ref-{offset}")
        summary = check_day_drift(engine, toy, day, run_id=f"ref-{offset}")
        assert summary["status"] == "checked"
        assert not summary["dataset_drift"], summary
        assert summary["drifted_features"] == [], summary
    assert _alerts(engine, "dataset_drift") == []


def test_a_shifted_day_is_drift_with_an_alert_and_a_report(
    settings: Settings, engine: sa.Engine, toy: Spec, tmp_path: Path
) -> None:
    day = AS_OF + dt.timedelta(days=2)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET x1 = x1 + 1.5, x2 = x2 * 2 "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    score_day(engine, toy, day, run_id="shifted")
    summary = check_day_drift(engine, toy, day, run_id="shifted", report_dir=tmp_path)
    assert summary["dataset_drift"] and {"x1", "x2"} <= set(summary["drifted_features"])
    head, rows = drift_table(engine, "toy", day)
    assert head is not None and head["dataset_drift"] and head["model_version"] == 1
    psi_x1 = next(r for r in rows if r["feature"] == "x1" and r["test"] == "psi")
    assert psi_x1["drifted"] and psi_x1["value"] >= toy.drift.psi_threshold and psi_x1["threshold"] == 0.2
    ks_x1 = next(r for r in rows if r["feature"] == "x1" and r["test"] == "ks")
    assert ks_x1["p_value"] is not None and ks_x1["p_value"] < 0.001
    assert Path(summary["report"]).read_text().count("x1") >= 1
    [alert] = _alerts(engine, "dataset_drift")
    assert alert["partition_date"] == day and "x1" in alert["message"]


def test_a_new_category_is_drift_and_is_counted(engine: sa.Engine, toy: Spec) -> None:
    day = AS_OF + dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id % 3 = 0 AND "
                             "event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    score_day(engine, toy, day, run_id="green")
    summary = check_day_drift(engine, toy, day, run_id="green")
    assert "color" in summary["drifted_features"]
    _, rows = drift_table(engine, "toy", day)
    js = next(r for r in rows if r["feature"] == "color" and r["test"] == "js")
    assert js["drifted"] and "green" in str(js["detail"])


def test_realized_performance_per_version_and_the_floor_alert(engine: sa.Engine, toy: Spec) -> None:
    day = AS_OF - dt.timedelta(days=10)
    score_day(engine, toy, day, run_id="old-day")
    assert realized_performance(engine, toy, day + dt.timedelta(days=DELAY - 1)) == [], "labels not arrived yet"
    records = realized_performance(engine, toy, day + dt.timedelta(days=DELAY))
    auc = next(r for r in records if r["metric"] == "roc_auc")
    assert auc["model_version"] == 1 and auc["partition_date"] == day and auc["n"] == 300
    assert 0.7 < auc["value"] <= 1
    assert any(r["metric"] == "calibration_error" for r in records)
    assert len(auc["detail"]["calibration"]) == 10
    assert _alerts(engine, "performance_floor") == []
    strict = toy.model_copy(update={"training": toy.training.model_copy(update={"min_score": 0.999})})
    realized_performance(engine, strict, day + dt.timedelta(days=DELAY))
    [alert] = _alerts(engine, "performance_floor")
    assert "below the floor 0.999" in alert["message"] and alert["severity"] == "critical"


def test_shadow_rows_never_reach_the_predictions_table(settings: Settings, engine: sa.Engine, toy: Spec) -> None:
    day = AS_OF - dt.timedelta(days=5)
    challenger = train_and_register(engine, toy, AS_OF - dt.timedelta(days=2), actor="t").version.version
    registry.promote(engine, "toy", challenger, alias=registry.CHALLENGER, actor="t", reason="shadow test")
    score_day(engine, toy, day, run_id="with-shadow")
    comparison = shadow_score(engine, toy, day, run_id="with-shadow")
    assert comparison is not None and comparison["n"] == 300
    assert comparison["challenger_version"] == challenger and comparison["champion_version"] == 1
    assert 0.5 < comparison["agreement"] <= 1 and comparison["score_correlation"] > 0.8
    with engine.connect() as conn:
        published = conn.execute(sa.text(
            f"SELECT DISTINCT model_version FROM {toy.predictions.table}")).scalars().all()
        shadowed = conn.execute(sa.text(
            f'SELECT count(*) FROM "{settings.schema}".shadow_predictions WHERE model_version = :v'),
            {"v": challenger}).scalar_one()
    assert published == [1] and shadowed == 300
    realized_performance(engine, toy, day + dt.timedelta(days=DELAY))
    with engine.connect() as conn:
        row = conn.execute(sa.text(
            f'SELECT champion_metric, challenger_metric FROM "{settings.schema}".shadow_comparisons')).one()
    assert row.champion_metric > 0.7 and row.challenger_metric > 0.7


def test_challenger_is_promoted_after_its_shadow_days(engine: sa.Engine, settings: Settings) -> None:
    spec = _open_spec(settings.schema, shadow_days=2)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=100, delay_days=DELAY)
    first = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert first.action == "challenger", "with shadow_days, even the first version shadows first"
    registry.promote(engine, "toy", first.version.version, actor="t", reason="bootstrap champion")
    registry.remove_alias(engine, "toy", registry.CHALLENGER, actor="t", reason="bootstrap")
    lenient = spec.model_copy(update={"training": spec.training.model_copy(update={"min_improvement": 0.0})})
    candidate = train_and_register(engine, lenient, AS_OF, actor="t", promote=True)
    assert candidate.action == "challenger" and registry.aliases(engine, "toy")["champion"] == 1
    assert promote_after_shadow(engine, spec, actor="t") is None, "no shadow days yet"
    for offset in (1, 2):
        day = AS_OF + dt.timedelta(days=offset)
        score_day(engine, spec, day, run_id=f"s{offset}")
        shadow_score(engine, spec, day, run_id=f"s{offset}")
    outcome = promote_after_shadow(engine, spec, actor="t")
    assert outcome is not None and outcome["promoted"] and outcome["shadow_days"] == 2
    assert registry.aliases(engine, "toy") == {"champion": candidate.version.version}


def test_gate_promotes_a_better_candidate_and_rejects_a_worse_one(settings: Settings, engine: sa.Engine) -> None:
    spec = _open_spec(settings.schema, min_score=0.6, min_improvement=0.01)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=200, delay_days=DELAY)
    weak = spec.model_copy(update={"model": spec.model.model_copy(update={
        "estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}})})
    baseline = train_and_register(engine, weak, AS_OF, actor="t", promote=True)
    assert baseline.action == "rejected" and "does not reach the floor 0.6" in baseline.decision.reason
    registry.promote(engine, "toy", baseline.version.version, actor="ops", reason="bootstrap a weak champion")

    better = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert better.action == "promoted" and better.promoted
    assert better.decision.champion_score == pytest.approx(0.5)
    assert better.decision.candidate_score > 0.7

    # Champion and candidate are scored on the identical holdout rows: recompute the champion's score.
    window = window_for(spec, AS_OF)
    holdout = split(load_labelled(engine, spec, window), window)[1]
    assert better.version.n_holdout == len(holdout)
    worse = train_and_register(engine, weak, AS_OF, actor="t", promote=True)
    champion = registry.load(engine, spec, better.version.version)
    from sklearn.metrics import roc_auc_score

    expected = roc_auc_score(holdout["_label"].astype(int), champion.pipeline.predict_proba(
        holdout[spec.feature_names])[:, 1])
    assert worse.decision.champion_score == pytest.approx(expected)
    assert worse.action == "rejected" and not worse.promoted
    assert registry.aliases(engine, "toy")["champion"] == better.version.version
    assert registry.get_version(engine, "toy", worse.version.version).metrics["roc_auc"] == pytest.approx(0.5)

    decisions = [e for e in registry.events(engine, "toy") if e["event"] == "gate_decision"]
    assert [e["details"]["action"] for e in decisions] == ["rejected", "promoted", "rejected"]
    latest = decisions[0]["details"]
    assert latest["holdout_start"] == window.holdout_start.isoformat()
    assert latest["holdout_end"] == window.end.isoformat()
    assert latest["candidate_score"] == pytest.approx(0.5) and latest["champion_score"] == pytest.approx(expected)
    kinds = [a["kind"] for a in alerts.recent(engine, "toy")]
    assert kinds.count("gate_reject") == 2 and kinds.count("gate_promote") == 1


def test_scores_are_probabilities(engine: sa.Engine, toy: Spec) -> None:
    summary = score_day(engine, toy, AS_OF, run_id="p")
    assert summary.score_mean is not None and 0 < summary.score_mean < 1
    assert np.isfinite(summary.score_mean)

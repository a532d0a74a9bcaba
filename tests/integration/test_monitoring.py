"""Drift, delayed-label performance, shadow scoring, the retraining gate and alerts, on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.model import registry
from ml_batch.model.training import load_labelled, split, window_for
from ml_batch.monitoring.daily import check_day_drift, drift_table
from ml_batch.monitoring.performance import (
    ESTIMATE_ALERT,
    estimate_performance,
    performance_table,
    realized_performance,
)
from ml_batch.monitoring.published import published_rows
from ml_batch.monitoring.shadow import shadow_score
from ml_batch.ops import alerts
from ml_batch.promotion.retrain import train_and_register
from ml_batch.promotion.shadow import promote_after_shadow
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration

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
        assert summary.status == "checked"
        assert not summary.dataset_drift, summary
        assert summary.drifted_features == (), summary
    assert _alerts(engine, "dataset_drift") == []


def _shift(engine: sa.Engine, spec: Spec, day: dt.date) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x1 = x1 + 1.5, x2 = x2 * 2 "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})


def test_a_shifted_day_is_drift_with_a_report_and_the_alert_waits_for_sustained_drift(
    settings: Settings, engine: sa.Engine, toy: Spec, tmp_path: Path
) -> None:
    day = AS_OF + dt.timedelta(days=2)
    _shift(engine, toy, day)
    score_day(engine, toy, day, run_id="shifted")
    summary = check_day_drift(engine, toy, day, run_id="shifted", report_dir=tmp_path)
    assert summary.dataset_drift and {"x1", "x2"} <= set(summary.drifted_features)
    # One drifted day is stored and reported, but alert_after (2 of the last 3 days) is not met yet.
    assert summary.window_drift and not summary.sustained_drift and summary.drifted_days == (day,)
    assert _alerts(engine, "dataset_drift") == []
    head, rows = drift_table(engine, "toy", day)
    assert head is not None and head["dataset_drift"] and head["model_version"] == 1
    assert head["detail"]["sustained"] == {"days": 2, "of": 3, "drifted_days": [str(day)], "sustained_drift": False}
    assert head["detail"]["threshold_source"] == "calibrated"
    psi_x1 = next(r for r in rows if r["feature"] == "x1" and r["test"] == "psi")
    profile = registry.reference_profile(engine, "toy", 1)
    assert profile is not None
    # The threshold is the largest PSI a day of the reference showed against the rest of it, never below the
    # fixed one (these toy days are random samples of the reference: the fixed one is in charge).
    widest_day = max(profile["calibration"]["values"]["x1"]["psi"])
    assert psi_x1["detail"]["calibrated_threshold"] == pytest.approx(widest_day)
    assert psi_x1["threshold"] == pytest.approx(max(widest_day, toy.drift.psi_threshold))
    assert psi_x1["drifted"] and psi_x1["value"] > psi_x1["threshold"]
    ks_x1 = next(r for r in rows if r["feature"] == "x1" and r["test"] == "ks")
    assert ks_x1["p_value"] is not None and ks_x1["p_value"] < 0.001
    assert summary.report is not None
    report = Path(summary.report).read_text()
    assert report.count("x1") >= 1 and "No sustained drift. 1 of the last 3 days drifted" in report

    next_day = day + dt.timedelta(days=1)
    _shift(engine, toy, next_day)
    score_day(engine, toy, next_day, run_id="shifted-2")
    summary = check_day_drift(engine, toy, next_day, run_id="shifted-2")
    assert summary.sustained_drift and summary.drifted_days == (day, next_day)
    [alert] = _alerts(engine, "dataset_drift")
    assert alert["partition_date"] == next_day and "x1" in alert["message"]
    assert alert["details"] == summary.to_xcom()  # the alert carries the summary the drift task returns
    assert "2 of the last 3 days drifted" in alert["message"]
    # A re-run of the day replaces its row and does not count it twice.
    again = check_day_drift(engine, toy, next_day, run_id="shifted-2b")
    assert again.drifted_days == (day, next_day)


def test_a_new_category_is_drift_and_is_counted(engine: sa.Engine, toy: Spec) -> None:
    day = AS_OF + dt.timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET color = 'green' WHERE id % 3 = 0 AND "
                             "event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    score_day(engine, toy, day, run_id="green")
    summary = check_day_drift(engine, toy, day, run_id="green")
    assert "color" in summary.drifted_features
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
    spec = _open_spec(settings.schema, shadow_days=DELAY + 1, shadow_min_labelled_days=1)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=100, delay_days=DELAY)
    first = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert first.action == "challenger", "with shadow_days, even the first version shadows first"
    registry.promote(engine, "toy", first.version.version, actor="t", reason="bootstrap champion")
    registry.remove_alias(engine, "toy", registry.CHALLENGER, actor="t", reason="bootstrap")
    lenient = spec.model_copy(update={"training": spec.training.model_copy(update={"min_improvement": 0.0})})
    candidate = train_and_register(engine, lenient, AS_OF, actor="t", promote=True)
    assert candidate.action == "challenger" and registry.aliases(engine, "toy")["champion"] == 1
    assert promote_after_shadow(engine, spec, actor="t") is None, "no shadow days yet"
    for offset in range(1, DELAY + 2):
        day = AS_OF + dt.timedelta(days=offset)
        score_day(engine, spec, day, run_id=f"s{offset}")
        shadow_score(engine, spec, day, run_id=f"s{offset}")
        realized_performance(engine, spec, day)  # the labels of day - DELAY arrive today
    outcome = promote_after_shadow(engine, spec, actor="t")
    assert outcome is not None and outcome.promoted and outcome.action == "promoted"
    assert (outcome.shadow_days, outcome.labelled_days) == (DELAY + 1, 1), "promoted on labelled evidence"
    assert registry.aliases(engine, "toy") == {"champion": candidate.version.version}
    last = AS_OF + dt.timedelta(days=DELAY + 1)
    [promoted] = [a for a in alerts.recent(engine, "toy") if "shadow days" in a["message"]]
    assert promoted["partition_date"] == last and f"(the last on {last})" in promoted["message"]


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
    # Every gate alert names its day: the labels the candidate was trained on (issue 21).
    for alert in alerts.recent(engine, "toy"):
        assert alert["partition_date"] == AS_OF and f"trained on the labels known on {AS_OF}" in alert["message"]


def test_scores_are_probabilities(engine: sa.Engine, toy: Spec) -> None:
    summary = score_day(engine, toy, AS_OF, run_id="p")
    assert summary.score_mean is not None and 0 < summary.score_mean < 1
    assert np.isfinite(summary.score_mean)


def test_drift_over_a_window_pools_the_last_days(engine: sa.Engine, toy: Spec) -> None:
    spec = toy.model_copy(update={"drift": toy.drift.model_copy(update={
        "window_days": 3, "alert_after": toy.drift.alert_after.model_copy(update={"days": 1, "of": 1})})})
    days = [AS_OF + dt.timedelta(days=i) for i in range(3)]
    _shift(engine, spec, days[0])
    _shift(engine, spec, days[1])
    for day in days:
        score_day(engine, spec, day, run_id=f"w-{day}")
    summary = check_day_drift(engine, spec, days[-1], run_id="w")
    head, _ = drift_table(engine, "toy", days[-1])
    assert head is not None
    window = head["detail"]["window"]
    assert (window["days"], window["days_with_rows"], window["first_day"]) == (3, 3, str(days[0]))
    assert window["rows"] == sum(published_rows(engine, spec, day) for day in days)
    # The last day itself is calm; the pooled window holds the two shifted days before it and drifted.
    assert not summary.dataset_drift and summary.window_drift and summary.sustained_drift
    assert {"x1", "x2"} <= set(window["drifted_features"])
    [alert] = _alerts(engine, "dataset_drift")
    assert "the last 3 days pooled" in alert["message"]


def test_a_feature_the_model_ignores_does_not_make_importance_weighted_drift(engine: sa.Engine, toy: Spec) -> None:
    profile = registry.reference_profile(engine, "toy", 1)
    assert profile is not None
    importance = profile["importance"]  # permutation importance on the holdout, stored at training
    assert set(importance) == {"x1", "x2", "color"} and importance["x1"] > 10 * max(importance["x2"], 1e-6)
    day = AS_OF + dt.timedelta(days=1)
    with engine.begin() as conn:  # only x2, which the label does not depend on
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET x2 = x2 + 2 WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    score_day(engine, toy, day, run_id="x2")
    by_count = toy.model_copy(update={"drift": toy.drift.model_copy(update={"drift_share": 0.3})})
    summary = check_day_drift(engine, by_count, day, run_id="x2")
    assert summary.drifted_features == ("x2",) and summary.dataset_drift
    by_importance = toy.model_copy(update={"drift": by_count.drift.model_copy(update={"share_basis": "importance"})})
    summary = check_day_drift(engine, by_importance, day, run_id="x2")
    assert summary.drifted_features == ("x2",) and not summary.dataset_drift
    assert summary.share_basis == "importance" and summary.weighted_share is not None
    assert summary.weighted_share < 0.1
    head, _ = drift_table(engine, "toy", day)
    assert head is not None and head["detail"]["weighted_share"] == pytest.approx(summary.weighted_share, abs=1e-4)


def test_an_estimate_below_the_floor_alerts_before_the_labels_arrive(engine: sa.Engine, toy: Spec) -> None:
    calm, broken = AS_OF, AS_OF + dt.timedelta(days=1)
    with engine.begin() as conn:  # the features the model ranks by carry no information on the broken day
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET x1 = 0.3, color = 'blue' "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(broken, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(broken + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})
    for day in (calm, broken):
        score_day(engine, toy, day, run_id=f"est-{day}")
    calm_auc = {r["metric"]: r["value"] for r in estimate_performance(engine, toy, calm, run_id="c")}
    assert calm_auc["estimated_roc_auc"] > toy.training.min_score
    assert _alerts(engine, "performance_estimate") == []
    broken_auc = {r["metric"]: r["value"] for r in estimate_performance(engine, toy, broken, run_id="b")}
    assert broken_auc["estimated_roc_auc"] < toy.training.min_score
    [alert] = _alerts(engine, ESTIMATE_ALERT)
    assert alert["partition_date"] == broken and "no labels yet" in alert["message"]
    # The labels of the calm day arrive: the estimate stays, with the realized value and the error next to it.
    realized_performance(engine, toy, calm + dt.timedelta(days=DELAY))
    rows = {(r["metric"], r["partition_date"]): r for r in performance_table(engine, "toy")}
    estimate, realized = rows["estimated_roc_auc", calm], rows["roc_auc", calm]
    assert estimate["detail"]["realized"] == pytest.approx(realized["value"])
    assert estimate["detail"]["error"] == pytest.approx(estimate["value"] - realized["value"])
    assert realized["detail"]["estimated"] == pytest.approx(estimate["value"])


def _null_every_row(engine: sa.Engine, spec: Spec, day: dt.date, column: str) -> None:
    """An upstream view lost a join: `column` is NULL in every row of `day`."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET {column} = NULL "
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"s": dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC),
                      "e": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)})


def _unchecked_nulls(spec: Spec) -> Spec:
    """The spec with scoring's null-share refusal off (`null_share_check`): the day reaches monitoring."""
    return spec.model_copy(update={"features": [f.model_copy(update={"null_share_check": False})
                                                for f in spec.features]})


@pytest.mark.parametrize("column", ["x2", "color"])
def test_a_feature_null_in_every_row_is_checked_stored_and_counted_as_drifted(
    engine: sa.Engine, toy: Spec, tmp_path: Path, column: str
) -> None:
    spec = _unchecked_nulls(toy)
    day = AS_OF + dt.timedelta(days=2)
    _null_every_row(engine, spec, day, column)
    score_day(engine, spec, day, run_id="no-values")
    summary = check_day_drift(engine, spec, day, run_id="no-values", report_dir=tmp_path)
    assert summary.status == "checked" and column in summary.drifted_features and summary.no_values == (column,)
    # The label-free estimates read the scores, which the day still has.
    assert summary.estimated["estimated_roc_auc"] is not None
    head, rows = drift_table(engine, "toy", day)
    assert head is not None and column in head["drifted_features"]
    assert head["detail"]["no_values"] == [column]
    ours = {r["test"]: r for r in rows if r["feature"] == column}
    assert "ks" not in ours  # nothing to compare: not computed, never stored as NULL
    assert ours["null_share"]["value"] == 1.0 and ours["null_share"]["drifted"]
    assert ours["null_share"]["detail"]["status"] == "no values"
    assert ours["null_share"]["detail"]["reference_null_share"] == pytest.approx(0.0)
    assert all(r["detail"].get("status") == "no values" for r in ours.values())
    report = Path(summary.report or "").read_text()
    assert f"{column}: no values on the day" in report

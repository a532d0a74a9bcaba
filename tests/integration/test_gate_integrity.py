"""Issue 15: a challenger is promoted on evidence, shadow keys follow the one key-to-text rule, backfills
replay every champion move, and spec queries survive comments and colons. Real PostgreSQL throughout."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import RegistryError
from ml_batch.model import registry
from ml_batch.model.registry import champion_on_day
from ml_batch.monitoring.performance import realized_performance
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
TRAINING = {"window_days": 10, "holdout_days": 3, "metric": "roc_auc", "min_score": 0.6,
            "shadow_days": 5, "shadow_min_labelled_days": 2, "shadow_max_days": 7}


def _shadow_spec(schema: str, **overrides: object) -> Spec:
    return toy_spec(schema, delay_days=DELAY, training=TRAINING, **overrides)


def _with_challenger(engine: sa.Engine, spec: Spec, challenger_spec: Spec | None = None) -> tuple[int, int]:
    """Champion version 1 and a challenger (the same model unless `challenger_spec` says otherwise)."""
    champion = train_and_register(engine, spec, AS_OF, actor="t").version.version
    registry.promote(engine, spec.name, champion, actor="t", reason="bootstrap champion")
    challenger = train_and_register(engine, challenger_spec or spec, AS_OF, actor="t").version.version
    registry.promote(engine, spec.name, challenger, alias=registry.CHALLENGER, actor="t", reason="shadow test")
    return champion, challenger


def _shadow(engine: sa.Engine, spec: Spec, offsets: range, *, labelled: bool) -> None:
    """Score and shadow-score days AS_OF + offset; with `labelled`, record their realized metrics too."""
    for offset in offsets:
        day = AS_OF + dt.timedelta(days=offset)
        score_day(engine, spec, day, run_id=f"d{offset}")
        assert shadow_score(engine, spec, day, run_id=f"d{offset}") is not None
        if labelled:
            realized_performance(engine, spec, day + dt.timedelta(days=DELAY))


def _decisions(engine: sa.Engine) -> list[dict]:
    return [e for e in registry.events(engine, "toy")
            if e["event"] == "gate_decision" and e["details"].get("stage") == "shadow"]


def test_a_challenger_without_labelled_days_waits_and_is_demoted_after_shadow_max_days(
    settings: Settings, engine: sa.Engine,
) -> None:
    spec = _shadow_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=60, delay_days=DELAY)
    champion, challenger = _with_challenger(engine, spec)
    _shadow(engine, spec, range(1, 6), labelled=False)  # shadow_days reached, no label yet
    waiting = promote_after_shadow(engine, spec, actor="t")
    assert waiting is not None and waiting.action == "waiting", "promoted without a single labelled day"
    assert waiting.labelled_days == 0 and waiting.shadow_days == 5
    assert registry.aliases(engine, "toy") == {"champion": champion, "challenger": challenger}
    _shadow(engine, spec, range(6, 8), labelled=False)  # shadow_max_days (7) passed without evidence
    demoted = promote_after_shadow(engine, spec, actor="t")
    assert demoted is not None and demoted.action == "demoted" and not demoted.promoted
    assert "0 of the 2 labelled shadow days" in demoted.reason
    assert registry.aliases(engine, "toy") == {"champion": champion}
    assert [d["details"]["action"] for d in _decisions(engine)] == ["demoted", "waiting"]
    assert any(a["kind"] == "gate_reject" and "demoted" in a["message"] for a in alerts.recent(engine, "toy"))


def test_a_challenger_is_promoted_on_labelled_evidence_and_a_worse_one_is_demoted(
    settings: Settings, engine: sa.Engine,
) -> None:
    spec = _shadow_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=60, delay_days=DELAY)
    _, challenger = _with_challenger(engine, spec)
    _shadow(engine, spec, range(1, 6), labelled=True)
    outcome = promote_after_shadow(engine, spec, actor="t", dag_id="retrain", run_id="r1")
    assert outcome is not None and outcome.action == "promoted" and outcome.labelled_days == 5
    assert registry.aliases(engine, "toy") == {"champion": challenger}
    [decision] = _decisions(engine)
    # One serialisation: the decision returned is the one recorded, and a retry of the run returns it again.
    assert decision["details"] == outcome.as_dict() and outcome.as_dict()["run_id"] == "r1"
    assert promote_after_shadow(engine, spec, actor="t", dag_id="retrain", run_id="r1") == outcome
    assert len(_decisions(engine)) == 1
    evidence = decision["details"]["days"]
    assert len(evidence) == 5 and all(d["champion_metric"] is not None and d["challenger_metric"] is not None
                                      for d in evidence)
    assert decision["details"]["challenger_realized"] >= decision["details"]["champion_realized"]

    # A constant-score challenger is worse than the champion on the same labelled rows: demoted.
    weak = spec.model_copy(update={"model": spec.model.model_copy(update={
        "estimator": "sklearn.dummy.DummyClassifier", "params": {"strategy": "prior"}})})
    bad = train_and_register(engine, weak, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", bad, alias=registry.CHALLENGER, actor="t", reason="shadow test")
    _shadow(engine, spec, range(6, 11), labelled=True)
    demoted = promote_after_shadow(engine, spec, actor="t")
    assert demoted is not None and demoted.action == "demoted" and "worse than the champion" in demoted.reason
    assert registry.aliases(engine, "toy") == {"champion": challenger}


def test_a_champion_changed_by_hand_during_shadow_cancels_the_promotion(settings: Settings, engine: sa.Engine) -> None:
    spec = _shadow_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=60, delay_days=DELAY)
    _, challenger = _with_challenger(engine, spec)
    _shadow(engine, spec, range(1, 3), labelled=True)
    by_hand = train_and_register(engine, spec, AS_OF - dt.timedelta(days=1), actor="t").version.version
    registry.promote(engine, "toy", by_hand, actor="ops", reason="hotfix")
    _shadow(engine, spec, range(3, 6), labelled=True)
    outcome = promote_after_shadow(engine, spec, actor="t")
    assert outcome is not None and outcome.action == "cancelled" and not outcome.promoted
    assert registry.aliases(engine, "toy") == {"champion": by_hand}, "the operator's champion was replaced"
    [decision] = _decisions(engine)
    assert decision["details"]["champion_now"] == by_hand and decision["to_version"] == challenger
    [alert] = [a for a in alerts.recent(engine, "toy") if "cancelled" in a["message"]]
    assert alert["severity"] == "warning" and f"set to version {by_hand} by ops" in alert["message"]


@pytest.mark.parametrize(("key_type", "key_sql"), [("uuid", "md5(id::text)::uuid"), ("text", "'k-' || id")])
def test_shadow_comparisons_join_labels_for_uuid_and_text_keys(
    settings: Settings, engine: sa.Engine, key_type: str, key_sql: str,
) -> None:
    schema = settings.schema
    load_toy_data(engine, schema, FIRST, days=30, rows_per_day=60, delay_days=DELAY)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{schema}".k_rows AS SELECT {key_sql} AS id, event_time, x1, x2, color '
                             f'FROM "{schema}".toy_rows'))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".k_labels AS SELECT {key_sql} AS id, y, known_at '
                             f'FROM "{schema}".toy_labels'))
    spec = _shadow_spec(schema, source={"table": f"{schema}.k_rows", "key": "id", "date_column": "event_time"},
                        labels={"table": f"{schema}.k_labels", "key": "id", "column": "y", "delay_days": DELAY,
                                "known_at_column": "known_at"})
    _with_challenger(engine, spec)
    day = AS_OF + dt.timedelta(days=1)
    _shadow(engine, spec, range(1, 2), labelled=True)
    with engine.connect() as conn:
        unmatched = conn.execute(sa.text(
            f'SELECT count(*) FROM "{schema}".shadow_predictions s LEFT JOIN "{schema}".toy_predictions p '
            "ON p.id::text = s.entity_key AND p.partition_date = s.partition_date WHERE p.id IS NULL")).scalar_one()
        row = conn.execute(sa.text(
            f'SELECT champion_metric, challenger_metric, labelled_n FROM "{schema}".shadow_comparisons '
            "WHERE partition_date = :d"), {"d": day}).one()
    assert unmatched == 0, f"shadow keys of type {key_type} are not the published keys' text"
    assert row.labelled_n == 60 and row.challenger_metric == pytest.approx(row.champion_metric)


def test_champion_on_day_replays_promotions_rollbacks_and_removals(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=DELAY)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=40, delay_days=DELAY)
    first, second = (train_and_register(engine, spec, AS_OF, actor="t").version.version for _ in range(2))
    today = dt.datetime.now(dt.UTC).date()
    registry.promote(engine, "toy", first, actor="t", reason="first")
    registry.promote(engine, "toy", second, actor="t", reason="second")
    assert champion_on_day(engine, "toy", today) == second
    registry.rollback(engine, "toy", actor="t", reason="bad")
    assert champion_on_day(engine, "toy", today) == first
    registry.remove_alias(engine, "toy", registry.CHAMPION, actor="ops", reason="retire the model")
    with pytest.raises(RegistryError, match=rf"model 'toy' had no champion at the end of {today} \(UTC\): "
                                            rf"the champion alias \(version {first}\) was removed"):
        champion_on_day(engine, "toy", today)
    registry.promote(engine, "toy", second, actor="t", reason="back")
    assert champion_on_day(engine, "toy", today) == second


def test_spec_queries_with_a_trailing_comment_and_colons_in_literals(settings: Settings, engine: sa.Engine) -> None:
    schema = settings.schema
    load_toy_data(engine, schema, FIRST, days=25, rows_per_day=40, delay_days=DELAY)
    source_query = (f"SELECT id, event_time, x1, x2, color\nFROM \"{schema}\".toy_rows\n"
                    "WHERE color <> 'a :b' AND event_time::date IS NOT NULL\n-- every row of the toy source")
    labels_query = f"select id, y, known_at from \"{schema}\".toy_labels where ':x' <> 'y:z' -- labels;"
    spec = toy_spec(schema, delay_days=DELAY,
                    source={"query": source_query, "key": "id", "date_column": "event_time"},
                    labels={"query": labels_query, "key": "id", "column": "y", "delay_days": DELAY,
                            "known_at_column": "known_at"})
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    summary = score_day(engine, spec, AS_OF, run_id="q")
    assert (summary.scored, summary.quarantined) == (40, 0)


def test_a_challenger_in_shadow_is_not_replaced_by_the_next_passing_candidate(
    settings: Settings, engine: sa.Engine,
) -> None:
    spec = _shadow_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=60, delay_days=DELAY)
    champion, challenger = _with_challenger(engine, spec)
    _shadow(engine, spec, range(1, 3), labelled=False)
    candidate = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert candidate.decision is not None and candidate.decision.promote
    assert candidate.action == "passed", "a waiting challenger's shadow period was restarted"
    assert registry.aliases(engine, "toy") == {"champion": champion, "challenger": challenger}
    [alert] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "gate_promote"]
    assert f"stays registered: challenger {challenger} is still in shadow" in alert["message"]

"""Issue 10 row 6: two runs of one day at once end with one published day whose quarantine is the published
run's, and its count is the one that run recorded. Quarantine rows belong to a run; `published_days` names
the day's published run; `quarantine_published` shows that run's rows."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.run.plan import plan_run
from ml_batch.run.publish import RunSummary, publish_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import Spec
from tests.support.toy import AS_OF, DAY, trained_toy

pytestmark = pytest.mark.integration

BAD_ROWS = 6
TRIALS = 20


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    """The toy model in two versions (1 champion), and a day of 80 rows of which BAD_ROWS fail validation."""
    spec = trained_toy(engine, settings.schema, validation={"max_quarantine_share": 0.2})
    train_and_register(engine, spec, AS_OF, actor="t")
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"UPDATE {spec.source.table} SET color = 'green' WHERE id IN (SELECT id FROM {spec.source.table} "
            f"WHERE event_time >= :s AND event_time < :e ORDER BY id LIMIT {BAD_ROWS})"),
            {"s": start, "e": start + dt.timedelta(days=1)})
    return spec


def _end_state(engine: sa.Engine, schema: str, spec: Spec) -> dict[str, object]:
    """What a reader sees of the day: its published run, the predictions' runs, and the quarantine."""
    with engine.connect() as conn:
        published = conn.execute(sa.text(
            f'SELECT run_id FROM "{schema}".published_days WHERE model_name = :m AND partition_date = :d'),
            {"m": spec.name, "d": DAY}).scalars().all()
        predicted = conn.execute(sa.text(
            f"SELECT run_id, model_version, count(*) FROM {spec.predictions.table} WHERE partition_date = :d "
            "GROUP BY 1, 2"), {"d": DAY}).all()
        recorded = dict(conn.execute(sa.text(
            f'SELECT run_id, rows_quarantined FROM "{schema}".runs WHERE model_name = :m AND partition_date = :d'),
            {"m": spec.name, "d": DAY}).all())
        shown = conn.execute(sa.text(
            f'SELECT run_id, count(*) FROM "{schema}".quarantine_published WHERE model_name = :m '
            "AND partition_date = :d GROUP BY 1"), {"m": spec.name, "d": DAY}).all()
        stored = conn.execute(sa.text(
            f'SELECT run_id, count(*) FROM "{schema}".quarantine WHERE model_name = :m AND partition_date = :d '
            "GROUP BY 1"), {"m": spec.name, "d": DAY}).all()
    return {"published": published, "predicted": predicted, "recorded": recorded, "shown": shown,
            "stored": stored}


def _assert_one_published_day(state: dict[str, object], winner: str, version: int) -> None:
    assert state["published"] == [winner]
    assert state["predicted"] == [(winner, version, 80 - BAD_ROWS)]
    assert state["recorded"][winner] == BAD_ROWS  # type: ignore[index]
    assert state["shown"] == [(winner, BAD_ROWS)], "readers see the published run's quarantine, all of it"
    assert state["stored"] == [(winner, BAD_ROWS)], "the superseded run's rows went with it"


def test_a_run_published_first_leaves_the_later_runs_quarantine_alone(settings: Settings, engine: sa.Engine,
                                                                        toy: Spec) -> None:
    """The interleaving that lost the quarantine: A and B scored, A published, then B published."""
    plan_a = plan_run(engine, toy, DAY, run_id="a", version=1)
    plan_b = plan_run(engine, toy, DAY, run_id="b", version=2)
    score_shard(engine, plan_a, 0)
    score_shard(engine, plan_b, 0)
    publish_run(engine, plan_a)
    state = _end_state(engine, settings.schema, toy)
    assert state["published"] == ["a"] and state["shown"] == [("a", BAD_ROWS)]
    assert sorted(state["stored"]) == [("a", BAD_ROWS), ("b", BAD_ROWS)], "b is still running: its rows stay"  # type: ignore[arg-type]
    publish_run(engine, plan_b)
    _assert_one_published_day(_end_state(engine, settings.schema, toy), "b", 2)


def _score(engine: sa.Engine, spec: Spec, run_id: str, version: int, barrier: threading.Barrier,
           results: dict[str, RunSummary | Exception]) -> None:
    barrier.wait()
    try:
        results[run_id] = score_day(engine, spec, DAY, run_id=run_id, version=version, run_type="test")
    except Exception as exc:  # noqa: BLE001 - collected and asserted on by the test
        results[run_id] = exc


def test_two_runs_of_one_day_at_once_end_with_the_published_runs_quarantine(settings: Settings,
                                                                             engine: sa.Engine, toy: Spec) -> None:
    for trial in range(TRIALS):
        barrier = threading.Barrier(2)
        results: dict[str, RunSummary | Exception] = {}
        ids = {f"t{trial}-v1": 1, f"t{trial}-v2": 2}
        threads = [threading.Thread(target=_score, args=(engine, toy, run_id, version, barrier, results))
                   for run_id, version in ids.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert all(isinstance(r, RunSummary) and r.status == "success" for r in results.values()), results
        state = _end_state(engine, settings.schema, toy)
        assert len(state["published"]) == 1, (trial, state)  # type: ignore[arg-type]
        winner = state["published"][0]  # type: ignore[index]
        _assert_one_published_day(state, winner, ids[winner])

"""The production path end to end: a REST API v2 backfill, run by the scheduler on two CeleryExecutor workers.

Everything goes through the REST API with a token from `/auth/token`, as an operator's script would; the
results are read from ml-batch's database. The stack is started by `tests/e2e/conftest.py`.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import DAG_ID, DAYS, MODEL, WORKERS, Stack, api_json

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RUN_TIMEOUT = 900  # seconds for the whole backfill (3 days x ~9 tasks on a 2-core machine)


def _at_six(day: dt.date) -> str:
    """The logical date of day D's run (its data interval starts at D 06:00 UTC, the spec's schedule)."""
    return dt.datetime.combine(day, dt.time(6), tzinfo=dt.UTC).isoformat()


def _wait(stack: Stack, what: str, done: Any, timeout: float = RUN_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(3)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{stack.tails()}")


def _backfill_runs(stack: Stack) -> list[dict[str, Any]]:
    with stack.client() as client:
        body = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill", "limit": 50}))
    return list(body["dag_runs"])


def _task_states(stack: Stack, run_id: str) -> list[tuple[str, int, str]]:
    with stack.client() as client:
        body = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"))
    return [(ti["task_id"], ti["map_index"], ti["state"]) for ti in body["task_instances"]]


def _published(stack: Stack) -> list[tuple[Any, ...]]:
    """Every published prediction of the backfilled days (what a reprocess must leave unchanged)."""
    table = stack.spec.predictions.table
    with stack.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.text(
            f"SELECT partition_date, application_id, score, predicted_label, model_version, run_id FROM {table} "
            "WHERE partition_date = ANY(:days) ORDER BY partition_date, application_id"), {"days": DAYS})]


def _scored_by(stack: Stack, worker: str) -> set[tuple[str, str]]:
    """(run_id, map_index) of the score tasks that `worker` executed, from its own log."""
    text = stack.components[worker].log.read_text(errors="replace")
    found = set()
    for line in text.splitlines():
        if "Executing workload in Celery" in line and "task_id='score'" in line:
            run = re.search(r"run_id='([^']+)'", line)
            index = re.search(r"map_index=(-?\d+)", line)
            found.add((run.group(1) if run else "?", index.group(1) if index else "?"))
    return found


@pytest.mark.timeout(RUN_TIMEOUT + 600)  # also starts the stack (module fixture): ~1.5 min here
def test_rest_backfill_runs_on_two_celery_workers_and_publishes_each_day_once(stack: Stack) -> None:
    """Unpause, backfill 3 days with 2 shards and 2 runs at a time, then check each day in ml-batch's tables."""
    with stack.client() as client:
        unpaused = api_json(client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}))
        assert unpaused["is_paused"] is False
        backfill = api_json(client.post("/api/v2/backfills", json={
            "dag_id": DAG_ID, "from_date": _at_six(DAYS[0]), "to_date": _at_six(DAYS[-1]),
            "reprocess_behavior": "none", "max_active_runs": 2, "dag_run_conf": {"shards": 2},
        }))

    def completed() -> bool:
        with stack.client() as client:
            return api_json(client.get(f"/api/v2/backfills/{backfill['id']}"))["completed_at"] is not None

    _wait(stack, f"backfill {backfill['id']} to complete", completed)
    stack.backfill_runs = runs = _backfill_runs(stack)
    states = {run["dag_run_id"]: run["state"] for run in runs}
    assert sorted(run["logical_date"][:10] for run in runs) == [d.isoformat() for d in DAYS], runs
    failed = {run_id: _task_states(stack, run_id) for run_id, state in states.items() if state != "success"}
    assert not failed, f"backfill runs not successful: {failed}\n{stack.tails()}"

    # Every day published once, by its backfill run, with the champion pinned at plan time, on 2 shards.
    table = stack.spec.predictions.table
    source = stack.spec.source
    with stack.engine.connect() as conn:
        for day in DAYS:
            recorded = conn.execute(sa.text(
                "SELECT run_id, run_type, status, model_version, shards, rows_extracted, rows_scored, "
                "rows_quarantined FROM ml_batch.runs WHERE model_name = :m AND partition_date = :d"),
                {"m": stack.spec.name, "d": day}).mappings().all()
            assert len(recorded) == 1, f"{day}: expected one ml-batch run, got {recorded}"
            run = recorded[0]
            assert run["run_id"] in states, f"{day}: run {run['run_id']} is not one of the backfill's {states}"
            assert (run["run_type"], run["status"], run["model_version"], run["shards"]) == (
                "backfill", "success", stack.champion, 2), f"{day}: {dict(run)}"
            published = conn.execute(sa.text(
                f"SELECT count(*), count(DISTINCT application_id), array_agg(DISTINCT model_version), "
                f"array_agg(DISTINCT run_id) FROM {table} WHERE partition_date = :d"), {"d": day}).one()
            start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
            in_source = conn.execute(sa.text(
                f"SELECT count(*) FROM {source.table} WHERE {source.date_column} >= :s AND "
                f"{source.date_column} < :e"), {"s": start, "e": start + dt.timedelta(days=1)}).scalar_one()
            assert published[0] == published[1] == run["rows_scored"] > 0, f"{day}: {published} vs {dict(run)}"
            assert run["rows_scored"] + run["rows_quarantined"] == run["rows_extracted"] == in_source, dict(run)
            assert (published[2], published[3]) == ([stack.champion], [run["run_id"]]), f"{day}: {published}"

    # The mapped score tasks ran on both Celery workers.
    scored = {worker: _scored_by(stack, worker) for worker in WORKERS}
    assert all(scored.values()), f"score tasks per worker: {scored}"
    backfill_scores = set().union(*scored.values())
    assert {(run_id, str(i)) for run_id in states for i in (0, 1)} <= backfill_scores, scored


def test_clearing_a_backfilled_day_reprocesses_it_and_leaves_the_table_unchanged(stack: Stack) -> None:
    """Clear one day's run (every task gets a second attempt): the published predictions stay the same."""
    if not stack.backfill_runs:
        pytest.skip("needs the backfill of the previous test")
    before = _published(stack)
    middle = next(run for run in stack.backfill_runs if run["logical_date"][:10] == DAYS[1].isoformat())
    run_id = middle["dag_run_id"]
    with stack.client() as client:
        api_json(client.post(f"/api/v2/dags/{DAG_ID}/clearTaskInstances", json={
            "dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True,
        }))

    def reprocessed() -> bool:
        with stack.client() as client:
            state = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"))["state"]
            tis = api_json(client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances"))["task_instances"]
        broken = [(ti["task_id"], ti["map_index"], ti["state"]) for ti in tis
                  if ti["state"] in {"failed", "up_for_retry", "upstream_failed"}]
        # Fail at the first failed attempt rather than after the production retries and their delays.
        assert not broken and state != "failed", f"cleared run {run_id}: {broken or state}\n{stack.tails(15)}"
        return state == "success" and all(ti["try_number"] >= 2 for ti in tis if ti["task_id"] in {"plan", "publish"})

    _wait(stack, f"cleared run {run_id} to finish again", reprocessed)
    assert _published(stack) == before


def test_the_backfilled_runs_sent_their_metrics_through_airflows_statsd(stack: Stack) -> None:
    """`[metrics] statsd_on`: the task processes on the Celery workers sent ml-batch's per-run metrics (names in
    the README), with the values the runs recorded, to the StatsD listener of the fixture."""
    if not stack.backfill_runs:
        pytest.skip("the backfill test did not run")
    prefix = f"airflow.ml_batch.{MODEL}."
    with stack.engine.connect() as conn:
        scored = sorted(int(n) for n in conn.execute(sa.text(
            "SELECT rows_scored FROM ml_batch.runs WHERE model_name = :m AND run_type = 'backfill'"),
            {"m": MODEL}).scalars())

    def sent(name: str) -> list[str]:
        return [line.split("|")[0].split(":", 1)[1] for line in list(stack.statsd.lines)
                if line.startswith(f"{prefix}{name}:")]

    def arrived() -> bool:
        return len(sent("rows_scored")) >= len(scored) and len(sent("drift_share")) >= len(scored)

    _wait(stack, "ml-batch's metrics of the backfilled runs", arrived, timeout=120)
    assert set(scored) <= {int(float(v)) for v in sent("rows_scored")}, (sent("rows_scored"), scored)
    for name in ("rows_extracted", "rows_quarantined", "score_mean", "stage.score", "runs.success",
                 "drifted_features"):
        assert sent(name), f"no {prefix}{name} among {sorted({ln.split(':')[0] for ln in stack.statsd.lines})[:80]}"

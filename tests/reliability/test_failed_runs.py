"""Issue 23 item 6: nothing of a run that failed on its data stays behind, also when a sibling shard still
holds the run's lease and then succeeds; planning the run again starts it afresh; the run's stored error
names the failure without the source's values.

The Airflow path: each shard is a step with a lease of its own (`ml_batch.run.lifecycle.RunLease`). Only
shard 0's rows are bad (the source rows the day's split gives shard 0), so shard 1 passes on its own.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.sources import shard_of
from ml_batch.errors import RunAbandoned, ValidationFailed
from ml_batch.run import lifecycle, runs
from ml_batch.run.names import run_objects, snapshot_piece
from ml_batch.run.plan import RunPlan, plan_run
from ml_batch.run.publish import publish_run
from ml_batch.run.shard import ShardResult, score_shard
from ml_batch.spec import Spec
from tests.reliability.dead_run_helpers import lock_waiters, wait_for
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration

SHARDS = 2
BAD_ROWS = 10  # of shard 0's ~40 rows: far above the toy's 5% quarantine cap, so its batch fails GX


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    return trained_toy(engine, settings.schema, rows_per_day=80)


def _set_shard0_color(engine: sa.Engine, spec: Spec, color: str) -> None:
    """Give BAD_ROWS of the day's rows that shard 0 of SHARDS gets (`shard_of`, the split's own rule) `color`."""
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    in_shard0 = shard_of(sa.column("id"), SHARDS).compile(compile_kwargs={"literal_binds": True})
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"UPDATE {spec.source.table} SET color = :color WHERE id IN (SELECT id FROM {spec.source.table} "
            f"WHERE event_time >= :s AND event_time < :e AND {in_shard0} = 0 ORDER BY id LIMIT {BAD_ROWS})"),
            {"color": color, "s": start, "e": start + dt.timedelta(days=1)})


@pytest.fixture()
def bad_shard0(engine: sa.Engine, toy: Spec) -> Spec:
    _set_shard0_color(engine, toy, "green")  # not one of the suite's colors
    return toy


def _left(engine: sa.Engine, spec: Spec, run_id: str) -> list[str]:
    """The run's staging table, snapshot tables and GX views that exist."""
    with engine.connect() as conn:
        return [item.name for item in run_objects(spec, run_id, SHARDS)
                if conn.execute(sa.select(sa.func.to_regclass(item.name))).scalar_one() is not None]


def _run(engine: sa.Engine, spec: Spec, run_id: str) -> dict[str, Any]:
    with engine.connect() as conn:
        row = runs.get(conn, spec.name, run_id)
    assert row is not None
    return row


class _ShardHeldUp:
    """Shard 1 of `plan` in a thread, held up inside its lease: the test locks its snapshot piece, so the shard
    waits to create its GX view on it. Leaving the block lets it go on and joins it."""

    def __init__(self, engine: sa.Engine, plan: RunPlan) -> None:
        self.engine, self.plan = engine, plan
        self.results: list[ShardResult | BaseException] = []
        self.thread = threading.Thread(target=self._score)

    def __enter__(self) -> _ShardHeldUp:
        self.holder = self.engine.connect()
        self.holder.execute(sa.text(
            f"LOCK TABLE {snapshot_piece(self.plan.spec, self.plan.run_id, 1)} IN ACCESS EXCLUSIVE MODE"))
        self.thread.start()
        wait_for(lambda: lock_waiters(self.engine), "shard 1 waits for its piece, its lease held")
        return self

    def __exit__(self, *exc: object) -> None:
        self.holder.rollback()
        self.holder.close()
        self.thread.join(120)

    def result(self) -> ShardResult | BaseException:
        assert not self.thread.is_alive(), "shard 1 did not end"
        [result] = self.results
        return result

    def _score(self) -> None:
        try:
            self.results.append(score_shard(self.engine, self.plan, 1, threads=None))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.results.append(exc)


@pytest.fixture()
def failed_beside_a_live_shard(engine: sa.Engine, bad_shard0: Spec) -> Iterator[tuple[RunPlan, ShardResult]]:
    """Shard 0 fails on its data while shard 1 holds the run's lease; then shard 1 ends normally."""
    plan = plan_run(engine, bad_shard0, DAY, run_id="sibling", run_type="scheduled", shards=SHARDS)
    with _ShardHeldUp(engine, plan) as sibling:
        with pytest.raises(ValidationFailed, match="batch failed validation"):
            score_shard(engine, plan, 0)
        assert _left(engine, bad_shard0, plan.run_id), "shard 1 holds the lock: the failing shard cannot drop"
    result = sibling.result()
    assert isinstance(result, ShardResult), f"shard 1's own data is fine: {result!r}"
    yield plan, result


def test_the_last_shard_to_end_drops_a_run_failed_on_its_data(engine: sa.Engine, failed_beside_a_live_shard
                                                              ) -> None:
    plan, sibling = failed_beside_a_live_shard
    assert sibling.scored > 0
    assert _left(engine, plan.spec, plan.run_id) == [], "shard 1 ended last: nothing of the failed run stays"
    run = _run(engine, plan.spec, plan.run_id)
    assert run["status"] == "failed" and run["data_failed_at"] is not None
    with pytest.raises(RunAbandoned, match="is gone"):  # a cleared shard task of the failed plan, named
        score_shard(engine, plan, 1)


def test_a_replan_clears_the_data_failure_and_the_run_publishes(engine: sa.Engine, bad_shard0: Spec) -> None:
    plan = plan_run(engine, bad_shard0, DAY, run_id="replanned", run_type="scheduled", shards=SHARDS)
    with pytest.raises(ValidationFailed):
        score_shard(engine, plan, 0)
    assert _run(engine, bad_shard0, plan.run_id)["data_failed_at"] is not None
    _set_shard0_color(engine, bad_shard0, "red")  # the source is fixed; the plan task is cleared

    again = plan_run(engine, bad_shard0, DAY, run_id="replanned", run_type="scheduled", shards=SHARDS)
    assert _run(engine, bad_shard0, again.run_id)["data_failed_at"] is None
    for shard in range(again.shards):
        score_shard(engine, again, shard)
    assert publish_run(engine, again).status == "success"
    assert _left(engine, bad_shard0, again.run_id) == []


def test_the_stored_error_of_a_batch_failure_names_no_source_values(engine: sa.Engine, bad_shard0: Spec) -> None:
    plan = plan_run(engine, bad_shard0, DAY, run_id="private", run_type="scheduled", shards=SHARDS)
    with pytest.raises(ValidationFailed, match=r"above validation\.max_quarantine_share 5\.0%; e\.g\. 'green'"):
        score_shard(engine, plan, 0)  # the raised error (and so the log) keeps the failing values
    error = str(_run(engine, bad_shard0, plan.run_id)["error"])
    assert f"{BAD_ROWS} of " in error and "above validation.max_quarantine_share 5.0%" in error, error
    assert "; e.g. " not in error and "green" not in error, error


def test_the_cleanup_takes_a_run_failed_on_its_data_as_dead_once_its_lock_is_free(engine: sa.Engine,
                                                                                 bad_shard0: Spec) -> None:
    """A sibling shard killed (SIGKILL) while the failing shard could not drop: no staleness window to wait."""
    plan = plan_run(engine, bad_shard0, DAY, run_id="orphaned", run_type="scheduled", shards=SHARDS)
    killed = engine.connect()  # the killed sibling's session: its lock goes with it, nothing of it runs
    killed.execute(sa.select(sa.func.pg_advisory_lock_shared(lifecycle.run_lock_id(engine, bad_shard0.name,
                                                                                   plan.run_id))))
    with pytest.raises(ValidationFailed):
        score_shard(engine, plan, 0)
    killed.invalidate()
    killed.close()
    assert _left(engine, bad_shard0, plan.run_id), "left by the failing shard: the sibling held the lock"

    cleaned = lifecycle.cleanup_dead_runs(engine, bad_shard0)  # the default window of hours
    assert [c.run_id for c in cleaned] == ["orphaned"]
    assert cleaned[0].reason.startswith("a step failed on its data at "), cleaned[0].reason
    assert _left(engine, bad_shard0, plan.run_id) == []
    with pytest.raises(RunAbandoned, match="was abandoned and cleaned up"):
        score_shard(engine, plan, 1)

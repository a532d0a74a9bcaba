"""Issue 10 row 10: republishing a day while an analyst's long query reads another day never queues the
readers of a third day behind the swap for long: the swap takes its locks with a lock_timeout and retries
with back-off, and the new partition carries every index before it is attached."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.run.day import score_day
from ml_batch.run.names import staging_table
from ml_batch.run.plan import plan_run
from ml_batch.run.publish import publish_run
from ml_batch.run.shard import score_shard
from ml_batch.spec import Spec
from tests.support.toy import trained_toy

pytestmark = pytest.mark.integration

LONG_DAY, REPUBLISHED_DAY, READ_DAY = dt.date(2026, 5, 21), dt.date(2026, 5, 22), dt.date(2026, 5, 23)
HOLD_S = 4.0


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    spec = trained_toy(engine, settings.schema)
    for day in (LONG_DAY, REPUBLISHED_DAY, READ_DAY):
        score_day(engine, spec, day, run_id=f"first-{day}")
    return spec


def test_readers_of_a_third_day_wait_under_a_second_while_a_long_query_blocks_a_republish(
        engine: sa.Engine, toy: Spec) -> None:
    table = toy.predictions.table
    plan = plan_run(engine, toy, REPUBLISHED_DAY, run_id="again")
    score_shard(engine, plan, 0)
    reading = threading.Event()
    waits: list[float] = []
    published: list[float] = []

    def long_reader() -> None:  # an analyst's 4-second query over another day's partition
        with engine.connect() as conn:
            conn.execute(sa.text(
                f"SELECT count(*) FROM {table} AS p, pg_sleep(:s) WHERE p.partition_date = :d"),
                {"s": HOLD_S, "d": LONG_DAY}).scalar_one()

    def third_day_reader() -> None:  # a dashboard reading a third day, again and again, each in its own query
        with engine.connect() as conn:
            reading.set()
            while not published:
                started = time.monotonic()
                assert conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE partition_date = :d"),
                                    {"d": READ_DAY}).scalar_one() == 80
                conn.rollback()
                waits.append(time.monotonic() - started)
                time.sleep(0.01)

    analyst = threading.Thread(target=long_reader)
    analyst.start()
    time.sleep(0.5)  # the analyst's query holds its lock
    dashboard = threading.Thread(target=third_day_reader)
    dashboard.start()
    reading.wait(10)
    started = time.monotonic()
    summary = publish_run(engine, plan)
    published.append(time.monotonic() - started)
    analyst.join(30)
    dashboard.join(30)

    assert summary.status == "success"
    with engine.connect() as conn:
        runs_of_day = conn.execute(sa.text(f"SELECT DISTINCT run_id FROM {table} WHERE partition_date = :d"),
                                   {"d": REPUBLISHED_DAY}).scalars().all()
    assert runs_of_day == ["again"]
    assert published[0] > HOLD_S - 1.5, "the publish did wait for the analyst's query to end"
    assert len(waits) > 10 and max(waits) < 1.0, f"longest wait of a third-day reader: {max(waits):.2f} s"


def test_the_new_partition_is_fully_indexed_before_the_swap(engine: sa.Engine, toy: Spec) -> None:
    """ATTACH PARTITION builds under the table's exclusive lock any index of the parent the partition lacks:
    the partition's indexes are the ones built on the staging table, before the lock was taken."""
    plan = plan_run(engine, toy, REPUBLISHED_DAY, run_id="indexed")
    score_shard(engine, plan, 0)
    publish_run(engine, plan)
    staged = staging_table(toy, "indexed").rpartition(".")[2]
    with engine.connect() as conn:
        parent_indexes = conn.execute(sa.text(
            "SELECT count(*) FROM pg_index WHERE indrelid = to_regclass(:t)"), {"t": toy.predictions.table}
        ).scalar_one()
        attached = conn.execute(sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_inherits h ON h.inhrelid = i.indexrelid "
            "WHERE i.indrelid = to_regclass(:p) ORDER BY 1"),
            {"p": f"{toy.predictions.table}_p{REPUBLISHED_DAY:%Y%m%d}"}).scalars().all()
    assert parent_indexes == 2
    # both built on the staging table (named after it), then adopted by ATTACH: none was built under the lock
    assert attached == [f"{staged}_id_partition_date_idx", f"{staged}_pkey"]

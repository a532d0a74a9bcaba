"""How much of a table the database has read: the measure behind "a run reads its day from the source once"
(`make bench` reports it; the shard tests assert it)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from ml_batch.db.sqlfiles import render


def rows_read(engine: sa.Engine, table: str) -> int:
    """Rows read from `table` so far by sequential and index scans (pg_stat_user_tables).

    Every session that read it must have flushed its counts first: ended sessions have (the engine's pooled
    ones are closed here), an idle one does within a second, this one is forced; the counts are then read in
    a fresh statistics snapshot.
    """
    engine.dispose()
    time.sleep(1.5)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return int(conn.execute(render("select_rows_read"), {"table": table}).scalar_one())

"""How much of a table the database has read: the measure behind "a run reads its day from the source once"
(`make bench` reports it; the shard tests assert it)."""

from __future__ import annotations

import time

import sqlalchemy as sa

from ml_batch.db.sqlfiles import render


def rows_read(engine: sa.Engine, table: str, *, settle_s: float = 10.0) -> int:
    """Rows read from `table` so far by sequential and index scans (pg_stat_user_tables).

    Every session that read it must have flushed its counts first: ended sessions have (the engine's pooled
    ones are closed here), an idle one does within a second, this one is forced; the counts are then read in
    a fresh statistics snapshot. On a loaded machine a session that just ended may flush a moment later, so
    the count is read until two reads a second apart agree (at most `settle_s` seconds).
    """
    engine.dispose()
    _wait_for_other_sessions_to_end(engine, settle_s)
    time.sleep(1.5)
    last = _read_now(engine, table)
    deadline = time.monotonic() + settle_s
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now = _read_now(engine, table)
        if now == last:
            return now
        last = now
    return last


def _wait_for_other_sessions_to_end(engine: sa.Engine, timeout_s: float) -> None:
    """Wait (at most `timeout_s`) until no other client session is connected to this database: a closed
    session's backend exits, and flushes its counts, a moment after its client went away (on a loaded machine,
    seconds later; a count flushed inside the measured window once added a whole-table scan of the setup)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            others = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()")).scalar_one()
        engine.dispose()
        if not others:
            return
        time.sleep(0.2)


def _read_now(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
        conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
        return int(conn.execute(render("select_rows_read"), {"table": table}).scalar_one())

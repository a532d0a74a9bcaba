"""The one try-lock protocol (`ml_batch.db.locks.when_free`) that the cleanup of dead runs and retention's sweep
share: it never waits for a live owner, leaves an object in use for later, always releases its lock, and a
failure to release it never hides the error that ended the work."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db import locks
from ml_batch.db.disconnects import is_disconnect
from ml_batch.run.day import score_day
from tests.reliability.dead_run_helpers import BlockedSweep
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration


def _waiting_on(engine: sa.Engine, holder_pid: int, timeout: float = 4.0) -> int:
    """The backend waiting for a lock `holder_pid` holds (polled until it shows up)."""
    deadline = time.monotonic() + timeout
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            pid = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE :h = ANY(pg_blocking_pids(pid))"),
                               {"h": holder_pid}).scalar_one_or_none()
            if pid is not None:
                return int(pid)
            conn.rollback()  # pg_stat_activity is a snapshot per transaction: look again in a new one
            time.sleep(0.05)
    raise AssertionError("nothing waited for the test's lock")


def test_a_sweep_whose_backend_is_terminated_reports_the_termination(settings: Settings, engine: sa.Engine) -> None:
    """Retention's sweep used to release its run lock in a bare `finally`: on the connection its work had just
    lost, the release raised its own error, which hid the real one (the DROP whose session was terminated)."""
    spec = trained_toy(engine, settings.schema, rows_per_day=40)
    score_day(engine, spec, DAY, run_id="done")
    sweep = BlockedSweep(engine, spec, settings, "done", DAY)
    with sweep as holder:
        holder_pid = int(holder.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())
        with engine.connect() as admin:
            admin.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": _waiting_on(engine, holder_pid)})
    error = sweep.error()
    # The error of the statement that lost its session (the sweep's DROP), not one of the release after it.
    assert isinstance(error, sa.exc.DBAPIError) and is_disconnect(error), repr(error)
    assert error.statement is not None and error.statement.startswith("DROP TABLE"), error.statement
    with engine.connect() as conn:  # the run's lock was released with the lost session
        granted = conn.execute(sa.select(sa.func.pg_try_advisory_lock(
            locks.key("run", "toy", "done", schema=settings.schema)))).scalar_one()
    assert granted


def test_when_free_skips_work_whose_lock_is_held_and_releases_its_own(engine: sa.Engine) -> None:
    lock = locks.key("test", "when_free", schema="x")
    ran: list[str] = []
    with engine.connect() as owner:
        owner.execute(sa.select(sa.func.pg_advisory_lock(lock)))
        assert locks.when_free(engine, lock, lambda conn: ran.append("held"), what="held") is None
        owner.execute(sa.select(sa.func.pg_advisory_unlock(lock)))
        owner.commit()
    assert locks.when_free(engine, lock, lambda conn: ran.append("free") or "done", what="free") == "done"
    assert ran == ["free"]
    with engine.connect() as other:  # released after the work
        assert other.execute(sa.select(sa.func.pg_try_advisory_lock(lock))).scalar_one()

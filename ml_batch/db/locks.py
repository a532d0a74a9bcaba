"""PostgreSQL locks: the one home of ml-batch's lock keys and of the three ways it waits for a lock.

**Keys.** Every advisory lock key is `hashtextextended('ml_batch.<kind>:<part>:...', 0)` (64 bits), built by
`key`. What a key protects decides its parts:

- ml-batch's own rows (a model's registry entries, a run) live in ml-batch's schema, so their keys name that
  schema (`key(kind, ..., schema=schema_of(bind))`): two installations in two schemas of one database never
  wait for each other;
- database objects a spec names (a predictions table, one day of it) are the same object whichever ml-batch
  schema writes them, so their keys name the object, schema-qualified, and no ml-batch schema.

**Waiting.**

1. `xact_lock`: wait for a transaction-level lock (released at commit or rollback).
2. `when_free`: the try-lock protocol of cleanups that must never wait for, or disturb, live work: take the
   session lock without waiting (held: the owner is alive, do nothing), then work in a transaction whose
   `lock_timeout` is short (an object in use is left for later, not waited for), and always release the lock,
   without letting a failure to release it hide the error that ended the work. The live owner's side is
   `held_shared` (a shared session lock held while the owner's work, or its object, lives).
3. `with_short_locks`: statements that need an exclusive table lock readers would queue behind (the swap of a
   day, a prune) wait at most `SwapLocking.timeout_s` per attempt, give way, and try again after a growing
   pause (`SwapLocking`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa

from ml_batch.db.sqlfiles import render
from ml_batch.db.tables import SCHEMA_PLACEHOLDER

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE 55P03 lock_not_available: a lock not granted within `lock_timeout`.
LOCK_NOT_AVAILABLE = "55P03"
# How long a cleanup waits for an object another session holds before leaving it for later.
CLEANUP_LOCK_TIMEOUT = "5s"


def key(kind: str, *parts: str, schema: str | None = None) -> sa.ColumnElement[int]:
    """The advisory lock key of `kind` (e.g. "run", "model", "publish") and its parts; with `schema` for a lock
    on rows of ml-batch's own schema (see the module docstring)."""
    named = [kind, *([schema] if schema is not None else []), *parts]
    return sa.func.hashtextextended(sa.literal(":".join(["ml_batch." + named[0], *named[1:]]), sa.Text), 0)


def schema_of(bind: sa.Engine | sa.Connection) -> str:
    """The ml-batch schema an engine (or connection) writes its tables to (`tables.SCHEMA_PLACEHOLDER` mapped)."""
    translate = bind.get_execution_options().get("schema_translate_map") or {}
    return str(translate.get(SCHEMA_PLACEHOLDER, SCHEMA_PLACEHOLDER))


def is_lock_not_available(exc: sa.exc.DBAPIError) -> bool:
    """True when the statement failed because a lock was not granted within `lock_timeout`."""
    return getattr(exc.orig, "pgcode", None) == LOCK_NOT_AVAILABLE


def xact_lock(conn: sa.Connection, lock: sa.ColumnElement[int]) -> None:
    """Wait for the transaction-level advisory lock `lock` (released when the transaction ends)."""
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))


def set_lock_timeout(conn: sa.Connection, timeout: str) -> None:
    """`lock_timeout` for the rest of the caller's transaction (e.g. "5s", "200ms")."""
    conn.execute(render("set_lock_timeout"), {"timeout": timeout})


def when_free(engine: sa.Engine, lock: sa.ColumnElement[int] | None, work: Callable[[sa.Connection], T], *,
              what: str, lock_timeout: str = CLEANUP_LOCK_TIMEOUT) -> T | None:
    """Run `work` in one transaction under the exclusive session lock `lock`, unless someone holds it or an
    object `work` needs stays locked for longer than `lock_timeout` (then None: in use, left for later).

    `lock` None runs `work` under the short `lock_timeout` alone. The lock is released however `work` ends;
    when releasing fails (the connection is gone), the connection is discarded, which releases it too, and the
    error that ended `work` is the one raised.
    """
    with engine.connect() as conn:
        if lock is not None:
            granted = bool(conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock))).scalar_one())
            conn.commit()
            if not granted:
                return None  # held: whoever holds it is alive
        try:
            with conn.begin():
                set_lock_timeout(conn, lock_timeout)
                return work(conn)
        except sa.exc.OperationalError as exc:
            if not is_lock_not_available(exc):
                raise
            logger.info("%s: in use (a lock not granted within %s), left for later", what, lock_timeout)
            return None
        finally:
            if lock is not None:
                _release(conn, lock, what)


@contextmanager
def held_shared(engine: sa.Engine, lock: sa.ColumnElement[int]) -> Iterator[None]:
    """Hold the shared session lock `lock` for the `with` block, on a connection of its own: what `when_free`
    refuses to work under while it is held (a live owner), and what a killed process leaves free. Released
    however the block ends; when releasing fails, the connection is discarded, which releases it too."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        conn.execute(sa.select(sa.func.pg_advisory_lock_shared(lock)))
        yield
    finally:
        try:
            conn.execute(sa.select(sa.func.pg_advisory_unlock_shared(lock)))
        except sa.exc.SQLAlchemyError as exc:  # never raised: it would hide the error that ended the block
            logger.debug("could not release a shared lock (%s); discarding the connection", exc)
            conn.invalidate()
        finally:
            conn.close()


def _release(conn: sa.Connection, lock: sa.ColumnElement[int], what: str) -> None:
    try:
        conn.execute(sa.select(sa.func.pg_advisory_unlock(lock)))
        conn.commit()
    except sa.exc.SQLAlchemyError as exc:
        # Never raised: it would hide the error that ended the work. The session's end releases the lock.
        logger.debug("%s: could not release its lock (%s); discarding the connection", what, exc)
        conn.invalidate()


@dataclass(frozen=True)
class SwapLocking:
    """How a statement that needs an exclusive table lock waits for it without queueing readers for long.

    Each attempt waits at most `timeout_s` (the longest a new reader can queue behind it), then gives way;
    the pause before the next attempt starts at `backoff_s` and doubles up to `max_backoff_s`. The defaults
    wait out a query holding the table for about half a minute.
    """

    timeout_s: float = 0.2
    attempts: int = 10
    backoff_s: float = 0.25
    max_backoff_s: float = 5.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.timeout_s <= 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"{self!r}: expected attempts >= 1, timeout_s > 0 and non-negative pauses")

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))


DEFAULT_LOCKING = SwapLocking()


def with_short_locks(conn: sa.Connection, locking: SwapLocking, work: Callable[[], None], *, what: str,
                     exhausted: Callable[[int, float], Exception] | None = None) -> None:
    """Run `work` (statements that lock a table readers use) in a savepoint under `locking.timeout_s`.

    When a lock is not granted in time the savepoint is rolled back, which releases the queue of readers behind
    it, and `work` is tried again after a pause, `locking.attempts` times in all. Then the error `exhausted`
    makes from (attempts, seconds waited) is raised from the last lock error (that error itself without it).
    """
    previous_timeout = str(conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one())
    waited_since = time.monotonic()
    for attempt in range(1, locking.attempts + 1):
        try:
            with conn.begin_nested():
                set_lock_timeout(conn, f"{max(1, round(locking.timeout_s * 1000))}ms")
                work()
                set_lock_timeout(conn, previous_timeout)
            return
        except sa.exc.OperationalError as exc:
            if not is_lock_not_available(exc):
                raise
            if attempt == locking.attempts:
                if exhausted is None:
                    raise
                raise exhausted(attempt, time.monotonic() - waited_since) from exc
            logger.info("%s: lock not granted in %.2f s (attempt %d of %d), retrying in %.2f s", what,
                        locking.timeout_s, attempt, locking.attempts, locking.pause(attempt))
            time.sleep(locking.pause(attempt))

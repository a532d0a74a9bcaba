"""Telling "the database went away" from every other error, and finding the error that really happened.

When PostgreSQL stops in the middle of a run, the first error is the real one (`server closed the
connection unexpectedly`, `terminating connection due to administrator command`). Failure handlers that
then try to record the failure raise their own `Connection refused`, and Python chains it on top: what
gets reported must be the first error, not the handler's.
"""

from __future__ import annotations

import sqlalchemy as sa

from ml_batch.errors import DatabaseError, MlBatchError

# SQLSTATE classes/codes of a lost connection: 08 (connection exception), 57P01 admin shutdown,
# 57P02 crash shutdown, 57P03 cannot connect now (starting up or shutting down).
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def is_disconnect(exc: BaseException) -> bool:
    """True when `exc` says the connection to PostgreSQL is gone or cannot be made (not a query error:
    lock timeouts, cancelled statements and deadlocks are OperationalErrors too, and are not this)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return bool(exc.connection_invalidated) or (exc.orig is not None and is_disconnect(exc.orig))
    module = type(exc).__module__
    if module.startswith("psycopg2"):
        import psycopg2

        if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
            return _lost(getattr(exc, "pgcode", None))
        return False
    if module.startswith("adbc_driver"):
        state = getattr(exc, "sqlstate", None)
        if state:
            return _lost(str(state))
        from adbc_driver_manager import AdbcStatusCode

        return getattr(exc, "status_code", None) == AdbcStatusCode.IO
    return False


def root_failure(exc: BaseException) -> BaseException | None:
    """The error to report for `exc`: the earliest expected failure (an MlBatchError or a lost connection)
    in its chain, or None when the chain starts with something else (a bug: keep its traceback).

    The chain is followed through explicit wrapping (`raise X from Y`) and through errors raised while
    handling another one (a failure handler's own connection error on top of the real one). A lost
    connection wins over the ml-batch error that merely wraps it (a source "cannot be read" because the
    server went away), except a DatabaseError, which already says what happened to the database.
    """
    chain = [exc]
    while True:
        current = chain[-1]
        following = current.__cause__ if current.__cause__ is not None else (
            None if current.__suppress_context__ else current.__context__)
        if following is None or following in chain:
            break
        chain.append(following)
    for depth in range(len(chain) - 1, -1, -1):
        candidate = chain[depth]
        if is_disconnect(candidate) or isinstance(candidate, MlBatchError):
            while depth > 0 and isinstance(chain[depth - 1], DatabaseError) and chain[depth - 1].__cause__ is candidate:
                depth -= 1
                candidate = chain[depth]
            return candidate
        if depth == 0 or chain[depth - 1].__cause__ is not candidate:
            return None  # not wrapped on purpose: an unexpected error, which a later one must not hide
    return None


def _lost(sqlstate: str | None) -> bool:
    """No SQLSTATE (the client lost the socket or could not connect) or one that means a lost session."""
    return sqlstate is None or sqlstate.startswith(_LOST_STATES)

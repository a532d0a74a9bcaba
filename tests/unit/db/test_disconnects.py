"""Which error the CLI reports when the database goes away: the first one, not a failure handler's."""

from __future__ import annotations

import adbc_driver_manager as adbc
import psycopg2
import pytest
import sqlalchemy as sa

from ml_batch.db.disconnects import is_disconnect, root_failure
from ml_batch.errors import DatabaseError, SourceError, first_line


def _lost(message: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, psycopg2.OperationalError(message))


def _raised(first: BaseException, then: BaseException | None = None, *, wrap: bool = False) -> BaseException:
    """`then` raised while handling `first` (or explicitly from it, when `wrap`); the exception that escapes."""
    try:
        try:
            raise first
        except BaseException as exc:
            if then is None:
                raise
            if wrap:
                raise then from exc
            raise then  # noqa: B904 - what a failure handler's own error does
    except BaseException as escaped:  # noqa: BLE001 - returned for inspection
        return escaped
    raise AssertionError("unreachable")


def test_a_handlers_connection_error_does_not_hide_the_first_one() -> None:
    first = _lost("server closed the connection unexpectedly\n\tThis probably means the server terminated")
    escaped = _raised(first, _lost('connection to server at "127.0.0.1", port 5 failed: Connection refused'))
    assert root_failure(escaped) is first
    assert first_line(first) == "server closed the connection unexpectedly"


def test_an_ml_batch_error_wrapping_a_query_error_is_reported_as_itself() -> None:
    wrapped = _raised(psycopg2.ProgrammingError("column x does not exist"), SourceError("cannot read source"),
                      wrap=True)
    assert root_failure(_raised(wrapped, _lost("Connection refused"))) is wrapped


def test_a_source_error_caused_by_a_lost_connection_reports_the_connection() -> None:
    io = adbc.OperationalError("IO: server closed the connection unexpectedly", status_code=adbc.AdbcStatusCode.IO)
    escaped = _raised(io, SourceError("cannot read source"), wrap=True)
    assert root_failure(escaped) is io


def test_cannot_connect_at_start_keeps_the_database_error() -> None:
    escaped = _raised(_lost("Connection refused"), DatabaseError("cannot connect to postgresql://..."), wrap=True)
    assert isinstance(root_failure(escaped), DatabaseError)


def test_a_bug_followed_by_a_connection_error_keeps_its_traceback() -> None:
    assert root_failure(_raised(KeyError("oops"), _lost("Connection refused"))) is None
    assert root_failure(KeyError("oops")) is None


@pytest.mark.parametrize("error, lost", [
    (psycopg2.OperationalError("server closed the connection unexpectedly"), True),
    (psycopg2.InterfaceError("connection already closed"), True),
    (adbc.ProgrammingError("column x does not exist", status_code=adbc.AdbcStatusCode.INVALID_ARGUMENT,
                           sqlstate="42703"), False),
    (adbc.OperationalError("terminating connection", status_code=adbc.AdbcStatusCode.IO, sqlstate="57P01"), True),
    (adbc.OperationalError("lock timeout", status_code=adbc.AdbcStatusCode.IO, sqlstate="55P03"), False),
    (ValueError("not a database error"), False),
])
def test_is_disconnect(error: BaseException, lost: bool) -> None:
    assert is_disconnect(error) is lost

"""Fault classes by what failed (`ml_batch.db.faults`): SQLSTATEs, GX's text, the wait for a free slot."""

from __future__ import annotations

import adbc_driver_manager as adbc
import psycopg2
import psycopg2.errors
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.faults import (
    ConnectPatience,
    connect_patiently,
    is_deterministic_failure,
    is_transient_fault,
    raise_database_fault,
    transient_text,
    what_happened,
)
from ml_batch.errors import ConfigError, SourceError, TransientDatabaseError, ValidationFailed


@pytest.mark.parametrize("state, transient", [
    ("53300", True), ("57P01", True), ("57P02", True), ("57P03", True), ("08006", True), ("08001", True),
    ("55P03", True), ("57014", True), ("40001", True), ("40P01", True),
    ("42703", False), ("22003", False), ("23505", False), ("42P01", False),
])
def test_a_database_error_is_transient_by_its_sqlstate(state: str, transient: bool) -> None:
    error = adbc.ProgrammingError("said", status_code=adbc.AdbcStatusCode.INVALID_ARGUMENT, sqlstate=state)
    assert is_transient_fault(error) is transient


@pytest.mark.parametrize("state, transient", [("57014", True), ("40P01", True), ("53300", True),
                                              ("42703", False), ("22P02", False)])
def test_gx_s_text_of_a_psycopg2_error_is_read_back_by_its_class(state: str, transient: bool) -> None:
    wrapped = sa.exc.OperationalError("SELECT 1", {}, psycopg2.errors.lookup(state)("said"))
    assert transient_text(str(wrapped)) is transient


def test_a_refused_gx_evaluation_is_raised_as_transient_not_as_bad_data() -> None:
    said = ('(psycopg2.OperationalError) connection to server at "127.0.0.1", port 5 failed: FATAL:  sorry, '
            "too many clients already\n\n(Background on this error at: https://sqlalche.me/e/21/e3q8)")
    with pytest.raises(TransientDatabaseError, match=r"GX x hit a database fault.*too many clients already$"):
        raise_database_fault(["column x is missing", said], what="GX x")
    raise_database_fault(["(psycopg2.errors.UndefinedColumn) column x does not exist"], what="GX x")  # no raise


def test_a_deterministic_error_wrapping_a_fault_is_retried() -> None:
    lost = adbc.OperationalError("terminating connection", status_code=adbc.AdbcStatusCode.IO, sqlstate="57P01")
    try:
        raise SourceError("cannot read the source") from lost
    except SourceError as exc:
        assert not is_deterministic_failure(exc)
    assert is_deterministic_failure(ValidationFailed("3 rows"))
    assert not is_deterministic_failure(TransientDatabaseError("GX: too many clients already"))


def test_what_happened_names_the_fault() -> None:
    def said(state: str) -> BaseException:
        return adbc.OperationalError("x", status_code=adbc.AdbcStatusCode.IO, sqlstate=state)

    assert what_happened(said("57014")) == "PostgreSQL refused the statement (statement cancelled (statement timeout))"
    assert what_happened(said("53300")) == "PostgreSQL has no free connection slot"
    assert what_happened(psycopg2.OperationalError("server closed the connection")) == \
        "lost the connection to PostgreSQL"


def test_connect_patiently_waits_for_a_free_slot_then_gives_up_with_the_servers_error() -> None:
    calls: list[int] = []

    def refused_twice() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise psycopg2.OperationalError("FATAL:  sorry, too many clients already")
        return "connected"

    patience = ConnectPatience(limit_s=5, backoff_s=0.01, max_backoff_s=0.02)
    assert connect_patiently(refused_twice, what="t", patience=patience) == "connected" and len(calls) == 3
    def always_refused() -> str:
        raise psycopg2.OperationalError("FATAL:  sorry, too many clients already")

    with pytest.raises(psycopg2.OperationalError, match="too many clients"):  # past the limit: the server's error
        connect_patiently(always_refused, what="t", patience=ConnectPatience(0.05, 0.01, 0.02))
    def down() -> str:
        raise psycopg2.OperationalError("Connection refused")

    with pytest.raises(psycopg2.OperationalError, match="Connection refused"):  # a server that is down: at once
        connect_patiently(down, what="t", patience=ConnectPatience(limit_s=60))


def test_the_wait_limit_is_a_setting_with_a_named_error() -> None:
    assert ConnectPatience.from_env({}).limit_s == 120
    assert ConnectPatience.from_env({"ML_BATCH_CONNECT_WAIT_S": "5"}).limit_s == 5
    with pytest.raises(ConfigError, match=r"ML_BATCH_CONNECT_WAIT_S='soon': expected seconds between 0 and"):
        ConnectPatience.from_env({"ML_BATCH_CONNECT_WAIT_S": "soon"})


def test_the_engine_keeps_the_urls_options(settings: Settings) -> None:
    url = sa.make_url(settings.database_url or "").update_query_dict({"options": "-c statement_timeout=1234"})
    engine = make_engine(Settings(home=settings.home, specs_dir=settings.specs_dir, schema=settings.schema,
                                  database_url=url.render_as_string(hide_password=False), user="t"))
    with engine.connect() as conn:
        assert conn.execute(sa.text("SHOW statement_timeout")).scalar_one() == "1234ms"
        assert conn.execute(sa.text("SHOW timezone")).scalar_one() == "UTC"
        with pytest.raises(sa.exc.OperationalError) as raised:
            conn.execute(sa.text("SELECT pg_sleep(3)"))
    assert is_transient_fault(raised.value)
    assert what_happened(raised.value).endswith("(statement cancelled (statement timeout))")

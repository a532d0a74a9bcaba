"""Fault classes decided by *what* failed, never by where: the one home of "is this the database, or the data?".

A database that refuses or drops connections, a lock or statement timeout, a serialization failure or a
deadlock is **transient**: the same step on the same inputs succeeds once the server has a free slot, the lock
holder ends or the conflicting transaction commits. It is retried (Airflow's retries, the CLI's next run) and
is never reported as bad data, wherever it is raised: SQLAlchemy, ADBC (extract, COPY), or Great
Expectations, which catches the error itself and reports the expectation as one that "could not be evaluated"
(`raise_database_fault` reads GX's words back into this class). A data or schema problem stays what its
`MlBatchError` class says (`ml_batch.errors`: deterministic or not).

The SQLSTATEs that are transient (`TRANSIENT_STATES`): class 08 (connection exception), 53300
too_many_connections, 57P01/57P02/57P03 admin shutdown / crash shutdown / cannot connect now, 55P03
lock_not_available, 57014 query_canceled (statement timeout), 40001 serialization_failure, 40P01 deadlock;
and a lost or refused connection that carries no SQLSTATE (`ml_batch.db.disconnects.is_disconnect`).

**Back-pressure.** A connection refused because the server has no free slot (53300: "too many clients
already", "remaining connection slots are reserved") is not failed at once: `connect_patiently` tries again
with a doubling pause (0.5 s up to 10 s) for up to `ML_BATCH_CONNECT_WAIT_S` seconds (default 120), then raises
the server's own error, which is transient (a task's retry comes later still). Every connection ml-batch opens
goes through it: the SQLAlchemy engine's pool (`wait_for_free_slots`, in `ml_batch.db.engine`), GX's calls
(`ml_batch.validation.session`, made again as a whole: GX's engines are its own) and the ADBC extract and
COPY connections (`ml_batch.run.shard`). A server
that is down (connection refused) is not waited for: that fails at once, as before.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from ml_batch.db.disconnects import is_disconnect
from ml_batch.errors import ConfigError, TransientDatabaseError, first_line, first_line_of, is_deterministic

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLSTATE -> what it means, for the transient codes (class 08 is matched by its prefix).
TRANSIENT_STATES = {
    "53300": "too many connections",
    "57P01": "admin shutdown",
    "57P02": "crash shutdown",
    "57P03": "cannot connect now",
    "55P03": "lock not available",
    "57014": "statement cancelled (statement timeout)",
    "40001": "serialization failure",
    "40P01": "deadlock detected",
}
_CONNECTION_CLASS = "08"
TOO_MANY_CONNECTIONS = "53300"
# libpq reports a refused connection without a SQLSTATE: the server's words for 53300 are all there is.
_NO_SLOT_WORDS = ("too many clients already", "remaining connection slots are reserved",
                  "too many connections for")
# SQLAlchemy prefixes a DBAPI error's text with its class: "(psycopg2.errors.QueryCanceled) canceling ...".
_DBAPI_TAG = re.compile(r"\((psycopg2(?:\.errors)?)\.(\w+)\)")

CONNECT_WAIT_ENV = "ML_BATCH_CONNECT_WAIT_S"
DEFAULT_CONNECT_WAIT_S = 120.0


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a psycopg2, ADBC or SQLAlchemy-wrapped error (None: it has none, or is no DB error)."""
    if isinstance(exc, sa.exc.DBAPIError):
        return sqlstate(exc.orig) if isinstance(exc.orig, BaseException) else None
    state = getattr(exc, "pgcode", None) or getattr(exc, "sqlstate", None)
    return str(state) if state else None


def is_transient_fault(exc: BaseException) -> bool:
    """True when `exc` itself is a database fault a retry can outlive (module docstring): a transient SQLSTATE,
    a lost or refused connection, a server without a free slot, or ml-batch's `TransientDatabaseError`."""
    if isinstance(exc, TransientDatabaseError):
        return True
    state = sqlstate(exc)
    if state is not None and (state in TRANSIENT_STATES or state.startswith(_CONNECTION_CLASS)):
        return True
    return is_disconnect(exc) or is_no_free_slot(exc)


def is_no_free_slot(exc: BaseException) -> bool:
    """True when the server refused a connection because all its slots are taken (SQLSTATE 53300)."""
    if sqlstate(exc) == TOO_MANY_CONNECTIONS:
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        return isinstance(exc.orig, BaseException) and is_no_free_slot(exc.orig)
    if not type(exc).__module__.startswith(("psycopg2", "adbc_driver")) and not isinstance(exc, TransientDatabaseError):
        return False  # a TransientDatabaseError quotes the driver's words (GX kept only those)
    said = str(exc)
    return any(words in said for words in _NO_SLOT_WORDS)


def fault_in(exc: BaseException) -> BaseException | None:
    """The transient database fault `exc` is or wraps (following `raise ... from`), or None."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        if is_transient_fault(current):
            return current
        seen.append(current)
        current = current.__cause__
    return None


def is_deterministic_failure(exc: BaseException) -> bool:
    """Whether a retry of the same step cannot fix `exc`: a deterministic `MlBatchError` that does not wrap a
    transient database fault (a source "cannot be read" because the server went away is retried)."""
    return is_deterministic(exc) and fault_in(exc) is None


def what_happened(exc: BaseException) -> str:
    """A fault in words, for an error line: 'lost the connection to PostgreSQL', 'PostgreSQL has no free
    connection slot', 'PostgreSQL cancelled the statement (statement timeout)', ..."""
    if is_no_free_slot(exc):
        return "PostgreSQL has no free connection slot"
    state = sqlstate(exc)
    if state in ("55P03", "57014", "40001", "40P01"):
        return f"PostgreSQL refused the statement ({TRANSIENT_STATES[state]})"
    return "lost the connection to PostgreSQL"


# -- faults another library caught and reported as text (GX) ------------------------------------------------
def transient_text(message: str) -> bool:
    """Whether an error *message* (all GX keeps of a failed metric) names a transient database fault.

    SQLAlchemy's text starts with the DBAPI class, `(psycopg2.errors.QueryCanceled) ...`: the class names the
    SQLSTATE (psycopg2 maps each code to its own class); a bare `psycopg2.OperationalError`/`InterfaceError`
    has none, which for psycopg2 means the connection was lost or refused (as `is_disconnect` reads it).
    """
    import psycopg2.errors

    for module, name in _DBAPI_TAG.findall(message):
        if module == "psycopg2" and name in ("OperationalError", "InterfaceError"):
            return True
        if module == "psycopg2.errors" and name in _transient_class_names(psycopg2.errors):
            return True
    return any(words in message for words in _NO_SLOT_WORDS)


def _transient_class_names(errors: Any) -> set[str]:
    from psycopg2 import errorcodes

    codes = [*TRANSIENT_STATES, *(v for k, v in vars(errorcodes).items()
                                  if k.isupper() and isinstance(v, str) and len(v) == 5
                                  and v.startswith(_CONNECTION_CLASS))]
    return {errors.lookup(code).__name__ for code in codes}


def raise_database_fault(messages: Iterable[str], *, what: str) -> None:
    """Raise `TransientDatabaseError` naming the first message that is a transient database fault (else
    return): for a library that catches the driver's error and keeps only its text (GX)."""
    for message in messages:
        if transient_text(message):
            raise TransientDatabaseError(
                f"{what} hit a database fault, not a data problem: {first_line_of(message) or message}")


# -- back-pressure ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConnectPatience:
    """How long a connection refused for want of a free slot is tried again (module docstring)."""

    limit_s: float = DEFAULT_CONNECT_WAIT_S
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    def __post_init__(self) -> None:
        if self.limit_s < 0 or self.backoff_s <= 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError(f"{self!r}: expected limit_s >= 0 and 0 < backoff_s <= max_backoff_s")

    def pause(self, attempt: int) -> float:
        """Seconds to wait after refused attempt `attempt` (1-based)."""
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ConnectPatience:
        """The limit from ML_BATCH_CONNECT_WAIT_S (seconds, 0: do not wait), default 120."""
        raw = (os.environ if environ is None else environ).get(CONNECT_WAIT_ENV, "").strip()
        if not raw:
            return cls()
        try:
            limit = float(raw)
        except ValueError:
            limit = -1.0
        if not 0 <= limit <= 86400:
            raise ConfigError(f"{CONNECT_WAIT_ENV}={raw!r}: expected seconds between 0 and 86400 (default "
                              f"{DEFAULT_CONNECT_WAIT_S:g})")
        return cls(limit_s=limit)


def connect_patiently(connect: Callable[[], T], *, what: str, patience: ConnectPatience | None = None) -> T:
    """`connect()`, tried again with back-off while the server refuses it for want of a free slot.

    Past `patience.limit_s` the last refusal is raised as it was (a transient fault: retried later). Any other
    error is raised at once.
    """
    patience = patience or ConnectPatience.from_env()
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect()
        except Exception as exc:
            refused = fault_in(exc)
            if refused is None or not is_no_free_slot(refused):
                raise
            waited = time.monotonic() - started
            pause = min(patience.pause(attempt), patience.limit_s - waited)
            if pause <= 0:
                logger.warning("%s: no free connection slot on the server after %.1f s (%d attempts): %s",
                               what, waited, attempt, first_line(refused))
                raise
            logger.info("%s: no free connection slot (%s), trying again in %.1f s", what, first_line(refused),
                        pause)
            time.sleep(pause)


def wait_for_free_slots(engine: sa.Engine, what: str) -> None:
    """Make every new connection of `engine`'s pool wait for a free slot (`connect_patiently`)."""

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return connect_patiently(lambda: dialect.connect(*cargs, **cparams), what=what)

    sa.event.listen(engine, "do_connect", connect)

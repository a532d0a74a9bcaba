"""Which database ml-batch talks to, and SQLAlchemy engines for it.

Every session ml-batch opens (SQLAlchemy, ADBC, GX) has one configuration: the URL's libpq `options` (e.g.
`?options=-c%20statement_timeout%3D60000`, a `search_path`) plus UTC (`with_session_options`). The engine's
pool waits for a free connection slot when the server has none (`ml_batch.db.faults.wait_for_free_slots`).
It holds at most 5 + 10 connections (SQLAlchemy's default pool): the run's lease and the steps' short
transactions, and the scoring threads' quarantine writes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from functools import lru_cache

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from ml_batch.config import Settings
from ml_batch.db.embedded import EmbeddedPostgres
from ml_batch.db.faults import wait_for_free_slots
from ml_batch.db.tables import SCHEMA_PLACEHOLDER
from ml_batch.errors import ConfigError, DatabaseError, first_line

logger = logging.getLogger(__name__)


# Days are UTC days: every session ml-batch opens (SQLAlchemy, ADBC, GX) reads and compares in UTC.
SESSION_OPTIONS = "-c timezone=UTC"


def with_session_options(sqlalchemy_url: str | sa.URL, *extra: str) -> sa.URL:
    """The URL with libpq `options` for a UTC session (plus `extra` `-c name=value` settings), keeping any
    options the URL already had (first, so a later `-c` of ours wins: the session is UTC whatever the URL)."""
    url = make_url(sqlalchemy_url)
    existing = url.query.get("options")
    parts = [existing] if isinstance(existing, str) and existing else []
    for option in (SESSION_OPTIONS, *extra):
        if option and not any(option in part for part in parts):
            parts.append(option)  # once: the URL an engine was made from may already carry it
    return url.update_query_dict({"options": " ".join(parts)})


def embedded_server(settings: Settings) -> EmbeddedPostgres:
    """The embedded server that lives under `settings.home`."""
    return EmbeddedPostgres(settings.home / "postgres")


def resolve_url(settings: Settings, *, start: bool = True) -> str:
    """The SQLAlchemy URL in use: ML_BATCH_DATABASE_URL, else the embedded server's (started if `start`)."""
    if settings.database_url:
        try:
            url = make_url(settings.database_url)
        except ArgumentError as exc:
            raise ConfigError(
                f"ML_BATCH_DATABASE_URL={_mask(settings.database_url)!r} is not a SQLAlchemy URL: "
                "expected e.g. postgresql+psycopg2://user:password@host:5432/dbname"
            ) from exc
        if url.get_backend_name() != "postgresql":
            raise ConfigError(
                f"ML_BATCH_DATABASE_URL uses backend {url.get_backend_name()!r}: ml-batch needs 'postgresql'"
            )
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg2")
        return url.render_as_string(hide_password=False)
    server = embedded_server(settings)
    return server.ensure_running().url if start else server.info().url


def make_engine(settings: Settings, *, start: bool = True) -> sa.Engine:
    """An engine whose tables land in `settings.schema` (see `tables.SCHEMA_PLACEHOLDER`)."""
    return _engine(resolve_url(settings, start=start), settings.schema)


@lru_cache(maxsize=8)
def _engine(url: str, schema: str) -> sa.Engine:
    # Days are UTC days: a run for day D reads D <= date_column < D+1 whatever the server's zone. The URL's
    # own options are kept (connect_args would replace them): the same session settings as ADBC and GX.
    engine = sa.create_engine(
        with_session_options(url), pool_pre_ping=True,
        # JSONB columns hold audit details with dates and Decimals: write them as ISO strings / numbers.
        json_serializer=_to_json,
    )
    wait_for_free_slots(engine, f"connecting to {_mask(url)}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseError(
            f"cannot connect to {_mask(url)}: {first_line(exc)}"
        ) from exc
    return engine.execution_options(schema_translate_map={SCHEMA_PLACEHOLDER: schema})


def _to_json(value: object) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False)


def _json_default(value: object) -> object:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def _mask(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"

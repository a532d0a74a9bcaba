"""What a running task needs from Airflow: the database engine (from a Connection) and settings.

Connections are resolved only inside a running task, never at parse time. The connection id is
`ml_batch_db` (override with ML_BATCH_CONN_ID); when it is not defined, ml-batch falls back to
ML_BATCH_DATABASE_URL or its embedded server, exactly as the CLI does.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import check_at_head

logger = logging.getLogger(__name__)

DEFAULT_CONN_ID = "ml_batch_db"


def conn_id() -> str:
    return os.environ.get("ML_BATCH_CONN_ID", DEFAULT_CONN_ID)


def connection(connection_id: str) -> Any | None:
    """The Airflow Connection `connection_id` as a running task sees it, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(connection_id)
    except AirflowNotFoundException:
        return None


def database_url_from_connection(connection_id: str) -> str | None:
    """A SQLAlchemy URL for an Airflow Connection, or None when no such connection is defined."""
    conn = connection(connection_id)
    return None if conn is None else url_of(conn)


def url_of(conn: Any) -> str:
    """The SQLAlchemy URL of an Airflow PostgreSQL connection (the task SDK's or the core model's): login,
    password, host, port, database (the connection's `schema`) and the TLS/options extras."""
    query = {k: str(v) for k, v in (conn.extra_dejson or {}).items() if k in {"sslmode", "sslrootcert", "options"}}
    url = sa.URL.create(
        "postgresql+psycopg2", username=conn.login or None, password=conn.password or None,
        host=conn.host or None, port=conn.port or None, database=conn.schema or None, query=query,
    )
    return url.render_as_string(hide_password=False)


def task_settings() -> Settings:
    """Settings for a running task: the environment, with the database from the Airflow Connection."""
    settings = Settings.from_env()
    url = database_url_from_connection(conn_id())
    if url is None:
        logger.info("no Airflow connection %r: using %s", conn_id(),
                    "ML_BATCH_DATABASE_URL" if settings.database_url else "the embedded PostgreSQL")
        return settings
    return Settings(home=settings.home, specs_dir=settings.specs_dir, schema=settings.schema, database_url=url,
                    user=settings.user)


def task_engine(settings: Settings) -> sa.Engine:
    """The engine for `settings`, once its schema is known to be at this ml-batch's migration head.

    Tasks do not migrate (alembic costs seconds per task): `ml-batch db up` does, before Airflow starts
    (the airflow-init service, `make airflow`, `make demo`). A schema behind the head fails the task at once
    (`SchemaNotAtHead`, deterministic) with both revisions and that command in its message.
    """
    engine = make_engine(settings)
    check_at_head(engine, settings.schema)
    return engine


def run_day(context: Mapping[str, Any]) -> tuple[dt.date, str, str]:
    """The day a daily run scores (`ml_batch.run.partition.resolve_day`, the one rule), its run id and its run
    type, from the task's context: what the task bodies and the failure alerts both use."""
    from ml_batch.run.partition import resolve_day
    from ml_batch.run.runs import run_type_of

    params = context.get("params") or {}
    dag_run = context["dag_run"]
    day = resolve_day(params.get("date"), context.get("data_interval_start"), getattr(dag_run, "run_after", None),
                      event_day=_event_day(context))
    return day, str(context["run_id"]), run_type_of(str(getattr(dag_run, "run_type", "manual")))


def _event_day(context: Mapping[str, Any]) -> object:
    """The `day` in the extra of the readiness Asset event that triggered the run (None: no such event)."""
    from ml_batch.errors import ConfigError

    events = context.get("triggering_asset_events") or {}
    named = [event for asset_events in events.values() for event in asset_events]
    if not named:
        return None
    for event in reversed(named):  # the latest event names the day
        extra = getattr(event, "extra", None) or {}
        if extra.get("day"):
            return extra["day"]
    raise ConfigError(f"the run was triggered by Asset event(s) {[str(getattr(e, 'uri', e)) for e in named]} "
                      "without a day: expected the loader to set extra {'day': 'YYYY-MM-DD'}")

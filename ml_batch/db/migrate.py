"""Apply ml-batch's versioned migrations (alembic) to the configured schema."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent
# Any constant works: it only has to be the same for every ml-batch process migrating this database.
_MIGRATION_LOCK_KEY = 0x6D6C6261  # "mlba"


def _config(connection: sa.Connection, schema: str) -> Config:
    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def upgrade(engine: sa.Engine, schema: str, revision: str = "head") -> str | None:
    """Bring `schema` to `revision`; idempotent and safe when several processes call it at once.

    Returns the revision the schema is at afterwards.
    """
    with engine.begin() as conn:
        # Serialise concurrent upgrades (e.g. parallel Airflow tasks): the second waits, then finds
        # nothing to do.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        command.upgrade(_config(conn, schema), revision)
    current = current_revision(engine, schema)
    logger.info("schema %s is at migration %s", schema, current)
    return current


def current_revision(engine: sa.Engine, schema: str) -> str | None:
    """The revision `schema` is at, or None when it has never been migrated."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of ml-batch."""
    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()

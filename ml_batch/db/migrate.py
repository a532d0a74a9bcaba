"""Apply ml-batch's versioned migrations (alembic) to the configured schema, and check that a schema is at head.

Airflow tasks do not migrate: each checks, with one query, that the schema is at the head revision shipped
with this ml-batch (`check_at_head`); `ml-batch db up` (the airflow-init service, `make airflow`,
`make demo`) applies the migrations before anything runs. Alembic is imported only to migrate.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from ml_batch.db import locks
from ml_batch.errors import MlBatchError

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_VERSIONS = _HERE / "migrations" / "versions"
# The identifiers every revision file declares at top level (alembic's own format, as `alembic revision` writes).
_REVISION_RE = re.compile(r'^revision\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)
_DOWN_REVISION_RE = re.compile(r'^down_revision\s*=\s*(?:["\']([^"\']+)["\']|None)', re.MULTILINE)
# The command that migrates (`ml-batch db up`) and the compose service that runs it.
UPGRADE_HINT = "run `ml-batch db upgrade` (or the airflow-init service)"


class SchemaNotAtHead(MlBatchError):
    """The database schema is not at the migration head of this ml-batch (behind it, or unknown to it)."""

    deterministic = True  # every retry would find the same revision until someone upgrades


def _config(connection: sa.Connection, schema: str) -> Config:
    from alembic.config import Config

    config = Config(str(_HERE / "alembic.ini"))
    config.set_main_option("script_location", str(_HERE / "migrations"))
    config.attributes["connection"] = connection
    config.attributes["schema"] = schema
    return config


def upgrade(engine: sa.Engine, schema: str, revision: str = "head") -> str | None:
    """Bring `schema` to `revision`; idempotent and safe when several processes call it at once.

    Returns the revision the schema is at afterwards.
    """
    from alembic import command

    with engine.begin() as conn:
        # Serialise concurrent upgrades (e.g. parallel Airflow tasks): the second waits, then finds
        # nothing to do.
        locks.xact_lock(conn, locks.key("migrate"))  # one database, one migration at a time (any schema)
        command.upgrade(_config(conn, schema), revision)
    current = current_revision(engine, schema)
    logger.info("schema %s is at migration %s", schema, current)
    return current


def current_revision(engine: sa.Engine, schema: str) -> str | None:
    """The revision `schema` is at, or None when it has never been migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table_schema": schema})
        return context.get_current_revision()


def head_revision() -> str | None:
    """The newest revision shipped with this version of ml-batch (alembic's own answer)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_HERE / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head()


def shipped_head() -> str:
    """The head revision, read from the revision files' `revision`/`down_revision` lines without importing
    alembic: the revision that no other revision names as its `down_revision` (ml-batch's history is linear)."""
    return _shipped()[1]


@lru_cache(maxsize=1)
def _shipped() -> tuple[frozenset[str], str]:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(_VERSIONS.glob("*.py")):
        text = path.read_text()
        revision, down = _REVISION_RE.search(text), _DOWN_REVISION_RE.search(text)
        if revision is None or down is None:
            raise MlBatchError(f"{path}: no `revision = \"...\"` / `down_revision = ...` line: not a revision file")
        revisions.add(revision.group(1))
        if down.group(1):
            parents.add(down.group(1))
    heads = sorted(revisions - parents)
    if len(heads) != 1:
        raise MlBatchError(f"{_VERSIONS}: expected one migration head, found {heads or 'none'}")
    return frozenset(revisions), heads[0]


def check_at_head(engine: sa.Engine, schema: str) -> str:
    """One query: is `schema` at this ml-batch's head revision? Returns it; SchemaNotAtHead (deterministic)
    names both revisions otherwise."""
    known, head = _shipped()
    version_table = sa.table("alembic_version", sa.column("version_num"), schema=schema)
    try:
        with engine.connect() as conn:
            found = conn.execute(sa.select(version_table.c.version_num)).scalars().all()
    except sa.exc.ProgrammingError:  # no such table (or schema): never migrated
        found = []
    if found == [head]:
        return head
    current = ", ".join(found) or "none (never migrated)"
    if len(found) == 1 and found[0] not in known:
        raise SchemaNotAtHead(
            f"database schema {schema!r} is at migration {found[0]}, which this ml-batch (head {head}) does not "
            "know: a newer ml-batch migrated it; deploy that version to every Airflow component"
        )
    raise SchemaNotAtHead(
        f"database schema {schema!r} is at migration {current}, expected {head} (this ml-batch's head): "
        f"{UPGRADE_HINT}, then clear the failed tasks"
    )

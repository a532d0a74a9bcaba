"""`ml_batch.db.tables` says what the migrations create, and the runs' CHECK constraints hold their lists.

Every table is defined twice: by the alembic migrations (what creates it; the truth for existing
databases) and in `ml_batch/db/tables.py` (what the code queries with). These tests migrate a fresh schema
to head and compare the two: alembic's autogenerate comparison (columns, types, nullability, server
defaults, identities, indexes and foreign keys), and what alembic does not compare (CHECK constraints,
partial-index predicates, primary-key names) by PostgreSQL's own report of the migrated schema and of a
second schema created from tables.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg2.errors
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from ml_batch.config import Settings
from ml_batch.db import tables
from ml_batch.db.sqlfiles import quote_ident

pytestmark = pytest.mark.integration

# In the migrated schema but not tables.py's business: alembic's own table and the view of migration 0005.
_NOT_IN_TABLES = {"alembic_version", "quarantine_published"}


def _translated(schema: str) -> sa.MetaData:
    """tables.metadata with its placeholder schema replaced by `schema` (foreign keys follow)."""
    target = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(target, schema=schema)
    return target


def _schema_differences(conn: sa.Connection, schema: str) -> list[Any]:
    """alembic's autogenerate differences between tables.py and the migrated `schema`."""

    def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return name == schema
        return not (type_ == "table" and name in _NOT_IN_TABLES)

    context = MigrationContext.configure(conn, opts={
        "compare_type": True, "compare_server_default": True, "include_schemas": True,
        "include_name": include_name,
    })
    return list(compare_metadata(context, _translated(schema)))


def _definitions(conn: sa.Connection, schema: str) -> dict[str, object]:
    """What PostgreSQL reports for tables.py's tables in `schema`, as {"table kind name": definition}: each
    CHECK constraint's text, each index (columns, uniqueness, partial-index predicate), the primary key and
    each foreign key (with its ON DELETE); `schema` itself is written as "<schema>" so two schemas compare."""
    inspector = sa.inspect(conn)
    found: dict[str, object] = {}
    for table in (t.name for t in tables.metadata.sorted_tables):
        for check in inspector.get_check_constraints(table, schema=schema):
            found[f"{table} check {check['name']}"] = check["sqltext"]
        for index in inspector.get_indexes(table, schema=schema):
            found[f"{table} index {index['name']}"] = {k: v for k, v in index.items() if k != "name"}
        primary_key = inspector.get_pk_constraint(table, schema=schema)
        found[f"{table} primary key {primary_key['name']}"] = primary_key["constrained_columns"]
        for fk in inspector.get_foreign_keys(table, schema=schema):
            referred = "<schema>" if fk["referred_schema"] == schema else fk["referred_schema"]
            found[f"{table} foreign key {fk['name']}"] = {**fk, "referred_schema": referred}
    return found


def _definition_differences(migrated: dict[str, object], declared: dict[str, object]) -> list[str]:
    """Each definition that the migrations and tables.py do not both have, alike."""
    return [
        f"{key}: migrations {migrated.get(key)!r}, tables.py {declared.get(key)!r}"
        for key in sorted(migrated.keys() | declared.keys()) if migrated.get(key) != declared.get(key)
    ]


@pytest.fixture()
def declared_schema(settings: Settings, engine: sa.Engine) -> Iterator[str]:
    """A second schema holding tables.py's own DDL (`create_all`): PostgreSQL then reports both sides' CHECK
    texts and index predicates in the same normalised form."""
    scratch = settings.schema + "_declared"
    with engine.begin() as conn:
        conn.execute(sa.schema.CreateSchema(scratch))
        _translated(scratch).create_all(conn)
    yield scratch
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {quote_ident(scratch)} CASCADE"))


def _insert_run(conn: sa.Connection, run_id: str, **values: object) -> None:
    row: dict[str, object] = {
        "model_name": "m", "run_id": run_id, "partition_date": "2026-01-01", "run_type": "manual",
        "dry_run": False, "status": "running", "model_version": 1, "artifact_sha256": "a" * 64, "shards": 1,
        "stage_seconds": {},
    }
    conn.execute(tables.runs.insert().values({**row, **values}))


def test_tables_match_the_migrations(settings: Settings, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        differences = _schema_differences(conn, settings.schema)
    assert differences == [], "tables.py and the migrations disagree:\n" + "\n".join(map(str, differences))


def test_constraints_and_indexes_match_the_migrations(
    settings: Settings, engine: sa.Engine, declared_schema: str
) -> None:
    # alembic compares neither CHECK constraints nor partial-index predicates: PostgreSQL's own report does.
    with engine.connect() as conn:
        migrated = _definitions(conn, settings.schema)
        declared = _definitions(conn, declared_schema)
    assert "runs check runs_status_known" in migrated
    differences = _definition_differences(migrated, declared)
    assert differences == [], "constraints or indexes differ:\n" + "\n".join(differences)


def test_runs_accept_each_run_type_and_status(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        for run_type in tables.RUN_TYPES:
            _insert_run(conn, f"type-{run_type}", run_type=run_type)
        for status in tables.RUN_STATUSES:
            _insert_run(conn, f"status-{status}", status=status)
        stored = conn.execute(sa.select(tables.runs.c.run_type, tables.runs.c.status)).all()
    assert {run_type for run_type, _ in stored} == set(tables.RUN_TYPES)
    assert {status for _, status in stored} == set(tables.RUN_STATUSES)


@pytest.mark.parametrize(("column", "value", "constraint"), [
    ("run_type", "nightly", "runs_run_type_known"),
    ("status", "finished", "runs_status_known"),
])
def test_runs_refuse_an_unlisted_value(engine: sa.Engine, column: str, value: str, constraint: str) -> None:
    with pytest.raises(sa.exc.IntegrityError, match=constraint) as raised, engine.begin() as conn:
        _insert_run(conn, "r1", **{column: value})
    assert isinstance(raised.value.orig, psycopg2.errors.CheckViolation)

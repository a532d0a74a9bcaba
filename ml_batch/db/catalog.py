"""What PostgreSQL's catalog says about a relation: whether it exists, and a column's type (never a lock)."""

from __future__ import annotations

import sqlalchemy as sa

from ml_batch.db.sqlfiles import render, render_regclass


def table_exists(conn: sa.Connection, name: str) -> bool:
    """Whether the table (or index, or view) `name` exists, without taking a lock on it."""
    return bool(conn.execute(render("select_table_exists"), {"table": render_regclass(name)}).scalar_one())


def column_type(conn: sa.Connection, table: str, column: str) -> str | None:
    """PostgreSQL's name of `table.column`'s type (e.g. `bigint`), or None when there is no such column."""
    found = conn.execute(render("select_column_type"), {"table": render_regclass(table), "column": column})
    value = found.scalar_one_or_none()
    return None if value is None else str(value)

"""What PostgreSQL's catalog says about a relation: whether it exists, and a column's type (never a lock); and
dropping the validation views GX reads, quietly (a failure handler's call that must never raise)."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from ml_batch.db.disconnects import is_disconnect
from ml_batch.db.sqlfiles import render, render_regclass

logger = logging.getLogger(__name__)


def table_exists(conn: sa.Connection, name: str) -> bool:
    """Whether the table (or index, or view) `name` exists, without taking a lock on it."""
    return bool(conn.execute(render("select_table_exists"), {"table": render_regclass(name)}).scalar_one())


def column_type(conn: sa.Connection, table: str, column: str) -> str | None:
    """PostgreSQL's name of `table.column`'s type (e.g. `bigint`), or None when there is no such column."""
    found = conn.execute(render("select_column_type"), {"table": render_regclass(table), "column": column})
    value = found.scalar_one_or_none()
    return None if value is None else str(value)


def drop_views(engine: sa.Engine, views: list[str]) -> None:
    """Drop validation views; a failure is logged, never raised (it must not hide the error being raised,
    nor fail a run that succeeded: a leftover view is dropped by the run's publish, or by the cleanup of
    dead runs). With the database gone, the error being raised already says so: log quietly."""
    try:
        with engine.begin() as conn:
            for view in views:
                conn.execute(render("drop_view", view=view))
    except sa.exc.SQLAlchemyError as exc:
        log = logger.debug if is_disconnect(exc) else logger.warning
        log("could not drop validation view(s) %s: %s", ", ".join(views), exc)

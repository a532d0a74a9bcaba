"""SQL selectables for what a spec names: a table (quoted identifiers) or a query (wrapped as a subquery).

Identifiers were validated when the spec was loaded; here SQLAlchemy quotes them, and every value is a
bound parameter. A spec's `query` is SQL by design (written by the model's owner, like a view), so it is
only ever used as a subquery whose columns we name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ml_batch.errors import SourceError
from ml_batch.spec import LabelsSpec, SourceSpec, Spec


def selectable(source: SourceSpec | LabelsSpec, columns: list[str], alias: str) -> sa.FromClause:
    """`source` as a FROM clause exposing `columns`."""
    cols: list[sa.ColumnClause[object]] = [sa.column(name) for name in dict.fromkeys(columns)]
    if source.table is not None:
        schema, _, name = source.table.rpartition(".")
        return sa.table(name, *cols, schema=schema or None).alias(alias)
    assert source.query is not None
    return sa.text(query_text(source.query)).columns(*cols).subquery(alias)


def query_text(query: str) -> str:
    """A spec's query as text SQLAlchemy wraps unchanged in `( … ) AS alias`.

    Every colon is escaped: the query has no bind parameters, so `:word` (in a string literal such as
    `'a :b'`, or a cast `::date`) is text, never a parameter. It ends with a newline, so a `--` comment on
    its last line ends there instead of commenting out the closing parenthesis.
    """
    return query.replace(":", "\\:") + "\n"


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[D 00:00 UTC, D+1 00:00 UTC): the rows a run for day D reads."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def timestamptz_literal(moment: dt.datetime) -> sa.ColumnElement[Any]:
    """A bound as a typed literal built from our own datetime (`'...'::timestamptz`): statements holding it are
    also sent as plain SQL (ADBC) or compiled into DDL (a validation view), where no parameter can be bound."""
    return sa.literal_column(f"'{moment.isoformat()}'::timestamptz")


def utc_day(value: sa.ColumnElement[Any]) -> sa.ColumnElement[dt.date]:
    """The UTC day of a date, timestamp or timestamptz column: the day whose bounds (`day_bounds`) hold it.

    `timezone('UTC', …)` turns the timestamptz into UTC wall time whatever the session's zone; a date or a
    timestamp without zone is read as UTC first (ml-batch's sessions are in UTC), as the day filter reads it.
    """
    as_utc = sa.func.timezone("UTC", sa.cast(value, sa.TIMESTAMP(timezone=True)))
    return sa.cast(as_utc, sa.Date)


def shard_of(key: sa.ColumnElement[object], shards: int) -> sa.ColumnElement[int]:
    """Deterministic shard number in [0, shards) of an entity key: PostgreSQL's hashtext of its text form."""
    masked = sa.func.hashtext(sa.cast(key, sa.Text)).op("&")(sa.literal_column("2147483647"))
    return sa.func.mod(masked, sa.literal_column(str(int(shards))))


def select_day(spec: Spec, day: dt.date, shard: int = 0, shards: int = 1) -> sa.Select:
    """Key, date and feature columns of the rows of `day` (and of one shard of them when `shards` > 1)."""
    columns = [spec.source.key, spec.source.date_column, *spec.feature_names]
    src = selectable(spec.source, columns, "src")
    start, end = day_bounds(day)
    date_col = src.c[spec.source.date_column]
    stmt = sa.select(*[src.c[name] for name in columns]).where(
        date_col >= timestamptz_literal(start), date_col < timestamptz_literal(end),
    )
    if shards > 1:
        stmt = stmt.where(shard_of(src.c[spec.source.key], shards) == sa.literal_column(str(int(shard))))
    return stmt


def day_sql(spec: Spec, day: dt.date, shard: int = 0, shards: int = 1) -> str:
    """`select_day` as a SQL string (for drivers outside SQLAlchemy, such as ADBC)."""
    return compiled(select_day(spec, day, shard, shards))


def compiled(stmt: sa.Select) -> str:
    """A statement as plain PostgreSQL SQL with its values inlined (it has only literals of our own making)."""
    from sqlalchemy.dialects import postgresql

    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def source_error(spec: Spec, problem: str) -> SourceError:
    """The error for a source that cannot be read, naming it."""
    return SourceError(f"model {spec.name!r}: cannot read source {spec.source.table or 'query'}: {problem}")


def source_key_type(conn: sa.Connection, spec: Spec) -> str:
    """PostgreSQL's own name of the source key's type (e.g. `bigint`), for the predictions table."""
    src = selectable(spec.source, [spec.source.key], "src")
    stmt = sa.select(src.c[spec.source.key]).limit(0)
    cursor = conn.exec_driver_sql(str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
    type_oid = cursor.cursor.description[0][1]
    cursor.close()
    return str(conn.execute(sa.text("SELECT format_type(:oid, NULL)"), {"oid": type_oid}).scalar_one())

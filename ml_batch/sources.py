"""SQL selectables for what a spec names: a table (quoted identifiers) or a query (wrapped as a subquery).

Identifiers were validated when the spec was loaded; here SQLAlchemy quotes them, and every value is a
bound parameter. A spec's `query` is SQL by design (written by the model's owner, like a view), so it is
only ever used as a subquery whose columns we name.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from ml_batch.spec import LabelsSpec, SourceSpec, Spec


def selectable(source: SourceSpec | LabelsSpec, columns: list[str], alias: str) -> sa.FromClause:
    """`source` as a FROM clause exposing `columns`."""
    cols: list[sa.ColumnClause[object]] = [sa.column(name) for name in dict.fromkeys(columns)]
    if source.table is not None:
        schema, _, name = source.table.rpartition(".")
        return sa.table(name, *cols, schema=schema or None).alias(alias)
    assert source.query is not None
    return sa.text(source.query).columns(*cols).subquery(alias)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[D 00:00 UTC, D+1 00:00 UTC): the rows a run for day D reads."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def select_day(spec: Spec, day: dt.date) -> sa.Select:
    """Key, date and feature columns of the rows of `day`, ordered by key (a stable order for chunks)."""
    columns = [spec.source.key, spec.source.date_column, *spec.feature_names]
    src = selectable(spec.source, columns, "src")
    start, end = day_bounds(day)
    date_col = src.c[spec.source.date_column]
    return (
        sa.select(*[src.c[name] for name in columns])
        .where(date_col >= start, date_col < end)
        .order_by(src.c[spec.source.key])
    )

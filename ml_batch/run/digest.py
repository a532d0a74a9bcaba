"""What a day of the source holds, summarised so that two moments can be compared: rows, keys, last change.

A run records, at plan time, the state of the day it read (`runs.key_digest`, `runs.source_updated_at`,
and the snapshot's row count as `rows_extracted`); reconcile (`ml_batch.run.reconcile`) computes the same
state of the source now and re-scores a day whose state moved.

- **Key digest**: the sum, as an exact numeric, of each key's 64-bit hash (PostgreSQL's `hashtextextended`
  of its text form, seed 0: the hash hash partitioning relies on, so it is stable across servers and
  versions): independent of row order, computed in the database in one pass, and sensitive to any key added,
  removed or replaced (it detects changes; it is no defence against someone forging keys). `key_hash` is its
  one home: the snapshot's digest and the source's are the same expression. It is about 5x cheaper than an
  md5 per key: on 1,000,000 keys 0.07 s against 0.38 s.
- **Last change**: `max(source.updated_at_column)` over the day, when the spec names one (a row updated in
  place keeps its key; its timestamp moves). At plan time it is read *before* the snapshot, so a row that
  changes between the two makes the recorded value too old, never too new: reconcile then re-scores the day
  rather than missing the change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ml_batch.db.sources import day_bounds, selectable, source_error, utc_day
from ml_batch.errors import first_line
from ml_batch.run.names import snapshot_whole
from ml_batch.spec import Spec

#: The digest of no keys: a day without rows in the source (`_digest`'s empty sum).
EMPTY_DIGEST = "0"


@dataclass(frozen=True)
class DayState:
    """One day of the source as reconcile compares it."""

    rows: int
    key_digest: str
    updated_at: dt.datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "key_digest": self.key_digest,
                "updated_at": None if self.updated_at is None else self.updated_at.isoformat()}


#: A day without rows in the source.
EMPTY_DAY = DayState(rows=0, key_digest=EMPTY_DIGEST, updated_at=None)


def key_hash(key: sa.ColumnElement[Any]) -> sa.ColumnElement[int]:
    """A key's 64-bit hash: `hashtextextended` of its text form, seed 0 (a bigint)."""
    return sa.func.hashtextextended(sa.cast(key, sa.Text), sa.literal_column("0"), type_=sa.BigInteger)


def _digest(key: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """The order-independent digest of a set of keys: the exact sum of their hashes, as text."""
    return sa.cast(sa.func.coalesce(sa.func.sum(key_hash(key)), int(EMPTY_DIGEST)), sa.Text)


def snapshot_digest(conn: sa.Connection, spec: Spec, run_id: str, shards: int) -> tuple[int, str]:
    """(rows, key digest) of the run's snapshot of its day, in the plan's transaction."""
    name = snapshot_whole(spec, run_id, shards)
    schema, _, table_name = name.rpartition(".")
    table = sa.table(table_name, sa.column(spec.source.key), schema=schema or None)
    rows, digest = conn.execute(sa.select(sa.func.count(), _digest(table.c[spec.source.key]))).one()
    return int(rows), str(digest)


def source_updated_at(conn: sa.Connection, spec: Spec, day: dt.date) -> dt.datetime | None:
    """The day's latest `source.updated_at_column` in the source now (None without one, or for an empty day)."""
    column = spec.source.updated_at_column
    if column is None:
        return None
    src = selectable(spec.source, [spec.source.date_column, column], "src")
    start, end = day_bounds(day)
    date_col = src.c[spec.source.date_column]
    stmt = sa.select(sa.func.max(sa.cast(src.c[column], sa.TIMESTAMP(timezone=True)))).where(
        date_col >= start, date_col < end)
    return _read(conn, spec, stmt).scalar()


def source_states(conn: sa.Connection, spec: Spec, first: dt.date, last: dt.date) -> dict[dt.date, DayState]:
    """The state of each day in [first, last] in the source now, in one pass (days without rows are absent)."""
    columns = [spec.source.key, spec.source.date_column]
    if spec.source.updated_at_column is not None:
        columns.append(spec.source.updated_at_column)
    src = selectable(spec.source, columns, "src")
    date_col = src.c[spec.source.date_column]
    day = utc_day(date_col).label("day")
    updated = (sa.func.max(sa.cast(src.c[spec.source.updated_at_column], sa.TIMESTAMP(timezone=True)))
               if spec.source.updated_at_column is not None else sa.null())
    stmt = (sa.select(day, sa.func.count(), _digest(src.c[spec.source.key]), updated)
            .where(date_col >= day_bounds(first)[0], date_col < day_bounds(last)[1])
            .group_by(day))
    try:
        found = conn.execute(stmt).all()
    except sa.exc.DBAPIError as exc:
        raise source_error(spec, first_line(exc)) from exc
    return {on: DayState(int(rows), str(digest), updated_at) for on, rows, digest, updated_at in found}


def _read(conn: sa.Connection, spec: Spec, stmt: sa.Executable) -> sa.CursorResult[Any]:
    """Run a statement that reads the source; a failure is a SourceError naming it."""
    try:
        return conn.execute(stmt)
    except sa.exc.DBAPIError as exc:
        raise source_error(spec, first_line(exc)) from exc

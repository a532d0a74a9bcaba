"""A run's day, read from the source once at plan time into a per-run snapshot split by shard.

Each shard validates (GX) and extracts its own piece of the snapshot, never the source: a shard's database
work is proportional to its rows, K shards read the source once between them, and validation and extract
read the same immutable rows, so a row that lands in the source mid-run is not in the run at all (the run
is the day as of plan time) instead of being scored without having been validated.

Layout, next to the run's staging table (lower-case, short names from a hash: GX names tables unquoted):

- one shard: the UNLOGGED table `ml_batch_day_<hash>_0`, made by one CREATE TABLE AS of the day;
- K > 1 shards: the LIST-partitioned table `ml_batch_day_<hash>` with the day's columns plus its shard number
  (`sources.shard_of`, computed once per row), and one UNLOGGED partition `ml_batch_day_<hash>_<k>` per
  shard, filled by one INSERT ... SELECT of the day that PostgreSQL routes to the pieces.

When the number of shards depends on the day's row count (`scoring.shards` unset), the day is first
materialised unsplit (`..._all`) and counted, then split from there: the source is still read once. CREATE
TABLE AS keeps the source's column types (numeric(p, s), uuid, timestamptz, text ...), and LIKE keeps them
in the split table, so validation's type rules see what the source has.

The snapshot lives as long as the run's staging table: publish drops it with a published, dry or failed day,
keeps it with the staging table for a retry, and the cleanup of dead runs drops a dead run's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa

from ml_batch.db.sources import compiled, select_day, shard_of, source_error
from ml_batch.db.sqlfiles import render
from ml_batch.errors import first_line
from ml_batch.run.names import snapshot_piece, snapshot_table, snapshot_tables, snapshot_unsplit
from ml_batch.spec import Spec

SHARD_COLUMN = "ml_batch_shard"


def piece_sql(spec: Spec, run_id: str, shard: int) -> str:
    """SELECT of the day's columns (key, date column, features) from one shard's piece, as plain SQL (ADBC)."""
    schema, _, name = snapshot_piece(spec, run_id, shard).rpartition(".")
    columns = list(dict.fromkeys([spec.source.key, spec.source.date_column, *spec.feature_names]))
    piece = sa.table(name, *[sa.column(c) for c in columns], schema=schema or None)
    return compiled(sa.select(*[piece.c[c] for c in columns]))


def materialise_day(conn: sa.Connection, spec: Spec, day: dt.date, run_id: str, shards: int | None,
                    shards_for: Callable[[int], int]) -> tuple[int, int]:
    """Read day `day` from the source once into the run's snapshot (replacing any earlier one of the run).

    `shards` None means `shards_for(day's rows)`. Runs in the caller's transaction (the plan's).

    Returns:
        (the day's row count, the number of shards).

    Raises:
        SourceError: the source cannot be read.
    """
    drop_snapshot(conn, spec, run_id)
    base = snapshot_table(spec, run_id)
    unsplit = snapshot_unsplit(spec, run_id)
    day_query = select_day(spec, day)
    split_at_once = shards is not None and shards > 1
    # Known K > 1: the unsplit table only lends its column types (LIMIT 0 reads no row) and the day is routed
    # to the pieces straight from the source. Otherwise the day lands here, is counted, and is split if need be.
    rows = _read_source(conn, spec, render("create_day_snapshot", table=unsplit).text,
                        day_query.limit(0) if split_at_once else day_query)
    count = shards if shards is not None else shards_for(rows)
    if count == 1:
        conn.execute(render("rename_day_snapshot", table=unsplit,
                            piece_name=snapshot_piece(spec, run_id, 0).rpartition(".")[2]))
        return rows, 1
    conn.execute(render("create_day_snapshot_parent", table=base, columns_of=unsplit, shard_column=SHARD_COLUMN))
    for shard in range(count):
        conn.execute(render("create_day_snapshot_piece", table=base, piece=snapshot_piece(spec, run_id, shard)),
                     {"shard": shard})
    insert = render("insert_day_snapshot", table=base).text
    if split_at_once:
        key = day_query.selected_columns[spec.source.key]
        rows = _read_source(conn, spec, insert, day_query.add_columns(shard_of(key, count).label(SHARD_COLUMN)))
    else:
        schema, _, name = unsplit.rpartition(".")
        landed = sa.table(name, *[sa.column(c) for c in day_query.selected_columns.keys()], schema=schema or None)
        conn.exec_driver_sql(f"{insert}\n{compiled(sa.select(landed, shard_of(landed.c[spec.source.key], count)))}")
    conn.execute(render("drop_table", table=unsplit))
    return rows, count


def drop_snapshot(conn: sa.Connection, spec: Spec, run_id: str) -> None:
    """Drop the run's snapshot, whatever its shape (nothing when there is none), and the GX views on it."""
    for table in snapshot_tables(spec, run_id):
        conn.execute(render("drop_day_snapshot", table=table))


def _read_source(conn: sa.Connection, spec: Spec, head: str, query: sa.Select) -> int:
    """Run `head` + the query (a statement that reads the source); the rows it wrote."""
    try:  # no bind parameters: the query is plain SQL with literal bounds, as ADBC reads it
        return int(conn.exec_driver_sql(f"{head}\n{compiled(query)}").rowcount)
    except sa.exc.DBAPIError as exc:
        raise source_error(spec, first_line(exc)) from exc

"""Arrow-native PostgreSQL I/O through ADBC (COPY BINARY under the hood).

Reading streams record batches of bounded size, so memory does not grow with the size of a day;
writing appends an Arrow table with COPY. Both are several times faster than row-by-row DBAPI fetches or
INSERTs and skip CSV parsing altogether.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import pyarrow as pa

from ml_batch.db.engine import with_session_options

logger = logging.getLogger(__name__)

# Size hint for each streamed record batch (~100k rows of 20 numeric features). Measured by `make bench`
# on 1M rows: 16 MB keeps peak memory at ~1.2x that of a 100k-row day, with the prefetched chunk, the
# chunks being scored (one per scoring thread) and the one being written (48 MB chunks: 2.0x).
DEFAULT_BATCH_BYTES = 16 * 1024 * 1024


def libpq_uri(sqlalchemy_url: str) -> str:
    """A libpq URI (what ADBC takes) for a SQLAlchemy PostgreSQL URL, with the session in UTC."""
    url = with_session_options(sqlalchemy_url)
    auth = quote(url.username or "", safe="")
    if url.password is not None:
        auth += ":" + quote(str(url.password), safe="")
    host = url.host or ""
    port = f":{url.port}" if url.port else ""
    params = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in url.query.items() if isinstance(v, str))
    return f"postgresql://{auth}{'@' if auth else ''}{host}{port}/{url.database or ''}?{params}"


@contextmanager
def connect(sqlalchemy_url: str) -> Iterator[Any]:
    """An ADBC DBAPI connection (autocommit off: the caller commits)."""
    import adbc_driver_postgresql.dbapi as adbc

    conn = adbc.connect(libpq_uri(sqlalchemy_url))
    try:
        yield conn
    finally:
        conn.close()


def stream(conn: Any, sql: str, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[pa.RecordBatch]:
    """Yield the query's rows as record batches of about `batch_bytes` each."""
    cursor = conn.cursor()
    try:
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(batch_bytes)})
        cursor.execute(sql)
        reader = cursor.fetch_record_batch()
        yield from reader
    finally:
        cursor.close()


def append(conn: Any, table: str, data: pa.Table) -> None:
    """COPY `data` into existing table `table` (`schema.table` or `table`)."""
    schema, _, name = table.rpartition(".")
    cursor = conn.cursor()
    try:
        cursor.adbc_ingest(name, data, mode="append", db_schema_name=schema or None)
    finally:
        cursor.close()

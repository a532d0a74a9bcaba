"""What both demo sources share: the `demo` schema, their calendar, and loading their tables.

`replace_tables` (re)creates a source's tables and loads them with COPY in one transaction, serialised by an
advisory lock so two seeds at once never race between DROP and CREATE.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.sql.compiler import IdentifierPreparer

from ml_batch.db import locks
from ml_batch.errors import ConfigError

SCHEMA = "demo"
_COPY_CHUNK_ROWS = 50_000


class DemoDays:
    """The calendar every demo config shares: `days` days ending at `end_date`, the last `shift_days` of
    them shifted, "now" the midnight after `end_date`. Mixed into the configs (they hold the fields)."""

    end_date: datetime.date
    days: int
    shift_days: int
    seed: int
    label_delay_days: int

    def check_days(self, min_days: int = 1) -> None:
        """`ConfigError` naming the field unless the calendar fields are valid."""
        if isinstance(self.end_date, datetime.datetime) or not isinstance(self.end_date, datetime.date):
            raise ConfigError(f"end_date={self.end_date!r} is not a date: expected a datetime.date")
        check_int("days", self.days, min_days, 3650)
        check_int("shift_days", self.shift_days, 0, self.days - 1)
        check_int("seed", self.seed, 0, 2**63 - 1)
        check_int("label_delay_days", self.label_delay_days, 0, 3650)

    @property
    def first_day(self) -> datetime.date:
        """First day of data."""
        return self.end_date - datetime.timedelta(days=self.days - 1)

    @property
    def shift_start(self) -> datetime.date:
        """First shifted day (the day after `end_date` when `shift_days` is 0)."""
        return self.end_date - datetime.timedelta(days=self.shift_days - 1)

    @property
    def now(self) -> datetime.datetime:
        """The moment the data is taken at: midnight UTC after `end_date`; later labels are unknown."""
        return datetime.datetime.combine(self.end_date + datetime.timedelta(days=1), datetime.time(), datetime.UTC)


def replace_tables(engine: sa.Engine, tables: sa.MetaData, frames: list[tuple[sa.Table, pd.DataFrame]]) -> None:
    """Drop and recreate `tables` (schema `demo`) and COPY `frames` into them, all in one transaction.

    Nobody sees half-loaded tables, a failure leaves the old ones, and loading twice leaves one copy.
    """
    with engine.begin() as conn:
        # Two concurrent seeds would race between DROP and CREATE: serialise them on a transaction lock.
        locks.xact_lock(conn, locks.key("demo_seed"))
        conn.execute(sa.schema.CreateSchema(SCHEMA, if_not_exists=True))
        tables.drop_all(conn)
        tables.create_all(conn)
        preparer = conn.dialect.identifier_preparer
        raw = conn.connection.driver_connection
        with raw.cursor() as cursor:  # type: ignore[union-attr]
            for table, frame in frames:
                _copy(cursor, preparer, table, frame)
        for table, _ in frames:
            # Fresh statistics so the first reads after seeding get a sensible plan.
            conn.execute(sa.text(f"ANALYZE {preparer.format_table(table)}"))


def check_int(name: str, value: object, low: int, high: int) -> None:
    """A `ConfigError` naming `name` unless `value` is an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name}={value!r} is out of range: expected an integer from {low} to {high}")


def _copy(cursor: Any, preparer: IdentifierPreparer, table: sa.Table, frame: pd.DataFrame) -> None:
    """COPY `frame` into `table` chunk by chunk, so only one chunk's CSV is in memory at a time."""
    columns = ", ".join(preparer.quote(column.name) for column in table.columns)
    statement = f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN WITH (FORMAT csv)"
    for start in range(0, len(frame), _COPY_CHUNK_ROWS):
        buffer = io.StringIO()
        frame.iloc[start : start + _COPY_CHUNK_ROWS].to_csv(
            buffer, header=False, index=False, date_format="%Y-%m-%d %H:%M:%S+00"
        )
        buffer.seek(0)
        cursor.copy_expert(statement, buffer)


def draw(rng: np.random.Generator, categories: tuple[str, ...], probabilities: np.ndarray) -> np.ndarray:
    """One category per row of `probabilities` (n x k, rows summing to 1), as an object array."""
    cumulative = probabilities.cumsum(axis=1)
    index = (cumulative < rng.random(len(probabilities))[:, None]).sum(axis=1)
    return np.asarray(categories, dtype=object)[np.minimum(index, len(categories) - 1)]

"""Quarantine: the rows of a day that failed validation, kept with every reason and the values they had.

Which rows fail, and why, is validation's answer (`ml_batch.validation`); this module owns the rows from then
on, in the `quarantine` table:

- **written** by the shard that scores the day (`store`), each row keyed by its key's text
  (`ml_batch.run.keys`), with `row_data` keeping what it held (`row_records`);
- **cleared** with what a new attempt replaces: a retried shard's rows (`clear_shard`), a re-planned or dry
  run's (`clear_run`), a dead running run's (`clear_run`, by the cleanup of dead runs);
- **superseded** when another run of the day publishes: the rows of the day's runs that can no longer publish
  go in the publishing transaction (`drop_superseded`), so the quarantine readers see
  (`quarantine_published`, migration 0005) is the published run's;
- **judged**: at most `validation.max_quarantine_share` of the day's rows may be quarantined: the rule is
  `ValidationSpec.quarantine_exceeded` (validation stops a shard early on one check, publish decides on the
  day).

`row_data`: JSON has no NaN or infinity and jsonb refuses them, so float values that are no numbers are kept
as the strings "NaN", "inf", "-inf" (`ml_batch.jsonvalues`). A float column in pandas holds NaN for both a
NULL and a NaN: a NaN there is a NULL unless the row's reasons say its column held a real NaN
(`nan_columns`). Only quarantined rows come here (few, by the share rule), so plain per-value Python is fine;
it keeps floats exact (pandas' `to_json` rounds them to 10 digits).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from ml_batch.db.catalog import table_exists
from ml_batch.db.tables import quarantine, runs
from ml_batch.jsonvalues import NAN_TEXT, json_scalar
from ml_batch.run.names import staging_table
from ml_batch.spec import Spec

if TYPE_CHECKING:  # imported where used: a plan or publish task never loads pandas
    import pandas as pd


def row_records(rows: pd.DataFrame, nan_columns: Sequence[Collection[str]]) -> list[dict[str, Any]]:
    """Each row of `rows` as a JSON-safe dict; `nan_columns[i]` names the columns of row i that held NaN.

    Raises:
        ValueError: `nan_columns` does not have one entry per row.
    """
    if len(nan_columns) != len(rows):
        raise ValueError(f"nan_columns has {len(nan_columns)} entries for {len(rows)} rows: expected one per row")
    records = []
    for row, nans in zip(rows.itertuples(index=False, name=None), nan_columns, strict=True):
        record = {str(name): _row_value(value) for name, value in zip(rows.columns, row, strict=True)}
        record.update((column, NAN_TEXT) for column in nans if column in record)
        records.append(record)
    return records


def _row_value(value: Any) -> Any:
    """One value of a row: a float NaN is pandas' NULL (a real NaN is named by the row's reasons)."""
    number = json_scalar(value, non_finite="text")
    if number == NAN_TEXT and isinstance(value, float) and math.isnan(value):
        return None
    return number


def store(engine: sa.Engine, spec: Spec, *, day: dt.date, run_id: str, shard: int, rows: pd.DataFrame,
          keys: Sequence[str], reasons: dict[str, list[str]], nan_columns: Sequence[Collection[str]]) -> None:
    """Insert the rows `keys` name (one per row of `rows`), with their reasons and values, in one transaction."""
    records = row_records(rows, nan_columns)
    payload = [
        {"model_name": spec.name, "partition_date": day, "run_id": run_id, "shard": shard, "entity_key": key,
         "reasons": reasons.get(key, []), "row_data": record}
        for key, record in zip(keys, records, strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(quarantine.insert(), payload)


def clear_run(conn: sa.Connection, model: str, run_id: str) -> int:
    """Delete every quarantined row of run `run_id`; how many there were."""
    deleted = conn.execute(quarantine.delete().where(quarantine.c.model_name == model,
                                                     quarantine.c.run_id == run_id))
    return int(deleted.rowcount or 0)


def clear_shard(conn: sa.Connection, model: str, run_id: str, shard: int) -> None:
    """Delete what an earlier attempt of this shard quarantined (a retried shard starts clean)."""
    conn.execute(quarantine.delete().where(quarantine.c.model_name == model, quarantine.c.run_id == run_id,
                                           quarantine.c.shard == shard))


def drop_superseded(conn: sa.Connection, spec: Spec, day: dt.date, published_run: str) -> None:
    """In the publishing transaction: delete the quarantined rows of the day's runs that can no longer publish.

    A run whose staging table exists is still scoring, or failed transiently and may be retried: its rows
    stay, so whichever run publishes last finds its own quarantine complete.
    """
    others = conn.execute(sa.select(runs.c.run_id).where(
        runs.c.model_name == spec.name, runs.c.partition_date == day, runs.c.run_id != published_run)).scalars()
    live = [other for other in others if table_exists(conn, staging_table(spec, other))]
    conn.execute(quarantine.delete().where(
        quarantine.c.model_name == spec.name, quarantine.c.partition_date == day,
        quarantine.c.run_id.not_in([published_run, *live]),
    ))

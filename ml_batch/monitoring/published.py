"""Reading what was published: a day's rows of the predictions table, joined back to their features.

Monitoring reads the analysts' predictions table, never a run's staging: what it checks is what was
published. `scored_day_sql` selects a day's source rows (or one hash shard of them, the same rows every
time) with the score and version they were published with; `day_sample` reads about `max_rows` of them
through Arrow.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from ml_batch.db import arrow
from ml_batch.db.sources import select_day
from ml_batch.spec import Spec

SCORE_COLUMN = "_score"
"""Column of `scored_day_sql` that holds the published score."""
VERSION_COLUMN = "_model_version"
"""Column of `scored_day_sql` that holds the version the row was scored with."""
PREDICTED_COLUMN = "_predicted_label"
"""Column of `scored_day_sql` that holds a multiclass row's published class."""
CLASS_SCORES_COLUMN = "_class_scores"
"""Column of `scored_day_sql` that holds a multiclass row's published class probabilities (JSON text)."""


def predictions_table(spec: Spec) -> sa.TableClause:
    """The spec's predictions table, with the columns monitoring reads (a multiclass model's also
    `predicted_label` and `class_scores`)."""
    multiclass: list[sa.ColumnClause[Any]] = (
        [sa.column("predicted_label"), sa.column("class_scores")] if spec.model.task == "multiclass" else [])
    return sa.table(spec.predictions.table_name, sa.column(spec.source.key), sa.column("partition_date"),
                    sa.column("score"), sa.column("model_version"), *multiclass, schema=spec.predictions.schema_name)


def published_rows(engine: sa.Engine, spec: Spec, day: dt.date) -> int:
    """How many predictions are published for `day`."""
    preds = predictions_table(spec)
    with engine.connect() as conn:
        return int(conn.execute(
            sa.select(sa.func.count()).select_from(preds).where(preds.c.partition_date == day)
        ).scalar_one())


def scored_day_sql(spec: Spec, day: dt.date, shard: int = 0, shards: int = 1) -> str:
    """Features of the day's *scored* rows with their published score and version (a multiclass model's also
    with its class and class probabilities, as JSON text), as plain SQL."""
    src = select_day(spec, day, shard, shards).subquery("day")
    preds = predictions_table(spec).alias("p")
    multiclass = [preds.c.predicted_label.label(PREDICTED_COLUMN),
                  sa.cast(preds.c.class_scores, sa.Text).label(CLASS_SCORES_COLUMN)
                  ] if spec.model.task == "multiclass" else []
    stmt = sa.select(
        *[src.c[name] for name in (spec.source.key, *spec.feature_names)],
        preds.c.score.label(SCORE_COLUMN), preds.c.model_version.label(VERSION_COLUMN), *multiclass,
    ).select_from(src.join(preds, sa.and_(
        preds.c[spec.source.key] == src.c[spec.source.key],
        preds.c.partition_date == sa.literal_column(f"DATE '{day.isoformat()}'"),
    )))
    return str(stmt.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def read_frame(engine: sa.Engine, sql: str) -> pd.DataFrame:
    """The rows of `sql`, read through ADBC (Arrow); an empty frame when there are none."""
    url = engine.url.render_as_string(hide_password=False)
    with arrow.connect(url) as conn:
        batches = list(arrow.stream(conn, sql))
    if not batches:
        return pd.DataFrame()
    return pa.Table.from_batches(batches).to_pandas()


def day_sample(engine: sa.Engine, spec: Spec, day: dt.date, max_rows: int) -> pd.DataFrame:
    """The day's scored rows, or a deterministic hash sample of about `max_rows` of them (empty: none)."""
    n = published_rows(engine, spec, day)
    if n == 0:
        return pd.DataFrame()
    return read_frame(engine, scored_day_sql(spec, day, 0, max(1, math.ceil(n / max_rows))))

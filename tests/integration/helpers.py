"""Small real-PostgreSQL fixtures shared by integration tests: a toy source with labels, and its spec."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.spec import Spec


def toy_spec(schema: str, *, delay_days: int = 3, known_at: bool = True, **overrides: object) -> Spec:
    data: dict = {
        "name": "toy",
        "source": {"table": f"{schema}.toy_rows", "key": "id", "date_column": "event_time"},
        "features": [
            {"name": "x1", "type": "numeric"},
            {"name": "x2", "type": "numeric"},
            {"name": "color", "type": "categorical", "categories": ["red", "blue"]},
        ],
        "labels": {
            "table": f"{schema}.toy_labels", "key": "id", "column": "y", "delay_days": delay_days,
            **({"known_at_column": "known_at"} if known_at else {}),
        },
        "model": {"task": "binary", "estimator": "sklearn.linear_model.LogisticRegression", "params": {}},
        "training": {"window_days": 10, "holdout_days": 3, "metric": "roc_auc", "min_score": 0.6},
        "predictions": {"table": f"{schema}.toy_predictions"},
    }
    data.update(overrides)
    return Spec.model_validate(data)


def load_toy_data(
    engine: sa.Engine, schema: str, first_day: dt.date, days: int, rows_per_day: int = 60,
    delay_days: int = 3, seed: int = 0,
) -> pd.DataFrame:
    """Rows with a learnable label; each label is known `delay_days` after its event, at 12:00 UTC."""
    rng = np.random.default_rng(seed)
    n = days * rows_per_day
    day_index = np.repeat(np.arange(days), rows_per_day)
    event_time = [
        dt.datetime.combine(first_day + dt.timedelta(days=int(d)), dt.time(1), tzinfo=dt.UTC)
        + dt.timedelta(minutes=int(m))
        for d, m in zip(day_index, rng.integers(0, 22 * 60, n), strict=True)
    ]
    x1 = rng.normal(0, 1, n)
    x2 = rng.normal(0, 1, n)
    color = rng.choice(["red", "blue"], n)
    y = (x1 + 0.5 * (color == "red") + rng.normal(0, 0.7, n) > 0.3).astype(int)
    frame = pd.DataFrame({
        "id": np.arange(1, n + 1), "event_time": event_time, "x1": x1, "x2": x2, "color": color, "y": y,
    })
    frame["known_at"] = [
        dt.datetime.combine(t.date() + dt.timedelta(days=delay_days), dt.time(12), tzinfo=dt.UTC)
        for t in frame["event_time"]
    ]
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{schema}".toy_rows, "{schema}".toy_labels'))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".toy_rows (id bigint primary key, event_time timestamptz not null, '
            "x1 double precision, x2 double precision, color text)"
        ))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".toy_labels (id bigint primary key, y smallint, known_at timestamptz)'
        ))
        cursor = conn.connection.driver_connection.cursor()
        for table, columns in (("toy_rows", ["id", "event_time", "x1", "x2", "color"]),
                               ("toy_labels", ["id", "y", "known_at"])):
            buffer = io.StringIO()
            frame[columns].to_csv(buffer, index=False, header=False)
            buffer.seek(0)
            cursor.copy_expert(f'COPY "{schema}".{table} ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv)', buffer)
    return frame


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"

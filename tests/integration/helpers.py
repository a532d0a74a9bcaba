"""Small real-PostgreSQL fixtures shared by integration tests: a toy source with labels, and its spec."""

from __future__ import annotations

import datetime as dt
import io
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
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


def recurring_spec(schema: str, *, date_column: str | None = "label_day", delay_days: int = 3,
                   **overrides: object) -> Spec:
    """The toy model over recurring entities: one row per entity and day, labels per entity and day."""
    labels: dict = {"table": f"{schema}.rec_labels", "key": "entity_id", "column": "y", "delay_days": delay_days,
                    "known_at_column": "known_at"}
    if date_column:
        labels["date_column"] = date_column
    return toy_spec(schema, delay_days=delay_days, **{
        "source": {"table": f"{schema}.rec_rows", "key": "entity_id", "date_column": "snapshot_at"},
        "labels": labels,
        **overrides,
    })


def load_recurring_data(engine: sa.Engine, schema: str, first_day: dt.date, days: int, entities: int = 40,
                        delay_days: int = 3, seed: int = 0) -> pd.DataFrame:
    """`entities` entities seen every day; each (entity, day) has its own features and its own label.

    The label depends on that day's features only, so a row joined to another day's label is visibly
    wrong. Labels are recorded `delay_days` after their day, at 12:00 UTC; `label_day` is a date column.
    """
    rng = np.random.default_rng(seed)
    day_index = np.repeat(np.arange(days), entities)
    n = len(day_index)
    frame = pd.DataFrame({
        "entity_id": np.tile(np.arange(1, entities + 1), days),
        "label_day": [first_day + dt.timedelta(days=int(d)) for d in day_index],
        "x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n), "color": rng.choice(["red", "blue"], n),
    })
    frame["snapshot_at"] = [dt.datetime.combine(d, dt.time(3), tzinfo=dt.UTC) + dt.timedelta(minutes=int(m))
                            for d, m in zip(frame["label_day"], rng.integers(0, 20 * 60, n), strict=True)]
    frame["y"] = (frame["x1"] + 0.5 * (frame["color"] == "red") + rng.normal(0, 0.5, n) > 0.3).astype(int)
    frame["known_at"] = [dt.datetime.combine(d + dt.timedelta(days=delay_days), dt.time(12), tzinfo=dt.UTC)
                         for d in frame["label_day"]]
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{schema}".rec_rows, "{schema}".rec_labels'))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".rec_rows (entity_id integer NOT NULL, snapshot_at timestamptz NOT NULL, '
            "x1 double precision, x2 double precision, color text)"
        ))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".rec_labels (entity_id integer NOT NULL, label_day date NOT NULL, y smallint, '
            "known_at timestamptz)"
        ))
        cursor = conn.connection.driver_connection.cursor()
        for table, columns in (("rec_rows", ["entity_id", "snapshot_at", "x1", "x2", "color"]),
                               ("rec_labels", ["entity_id", "label_day", "y", "known_at"])):
            buffer = io.StringIO()
            frame[columns].to_csv(buffer, index=False, header=False)
            buffer.seek(0)
            cursor.copy_expert(f'COPY "{schema}".{table} ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv)', buffer)
    return frame


def write_spec(spec: Spec, folder: Path) -> Path:
    """A specs folder holding `spec` alone (what ML_BATCH_SPECS_DIR points the CLI or a task at)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{spec.name}.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True)))
    return folder


def airflow_task_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, spec: Spec, tmp_path: Path) -> Path:
    """What a task process of a deployed Airflow has: the `ml_batch_db` connection, ml-batch's schema and
    home, and a specs folder holding `spec` (returned)."""
    specs_dir = write_spec(spec, tmp_path / "specs")
    url = sa.engine.make_url(settings.database_url).set(drivername="postgresql")
    monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_DB", url.render_as_string(hide_password=False))
    monkeypatch.setenv("ML_BATCH_SCHEMA", settings.schema)
    monkeypatch.setenv("ML_BATCH_SPECS_DIR", str(specs_dir))
    monkeypatch.setenv("ML_BATCH_HOME", str(settings.home))
    return specs_dir


def shift_toy_day(engine: sa.Engine, spec: Spec, day: dt.date, by: float, column: str = "x1") -> None:
    """Add `by` to a numeric column of every toy source row of `day` (a covariate shift of that day)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(f'UPDATE {spec.source.table} SET "{column}" = "{column}" + :by '
                             "WHERE event_time >= :s AND event_time < :e"),
                     {"by": by, "s": start, "e": start + dt.timedelta(days=1)})


def run_daily_dag(spec: Spec, day: dt.date) -> Any:
    """The daily DAG of `spec` run through real Airflow (`dag.test()`) for `day`, as a local run is: dated when
    it starts, the day in its `date` param; no retries. A DAG is built for each run, as the scheduler parses the
    file for each run (`dag.test()` mutates the DAG's params with the run's conf). Returns the DAG run."""
    from ml_batch.airflow.dag_factory import build_dag

    dag = build_dag(spec)
    for task in dag.tasks:
        task.retries = 0
    return dag.test(logical_date=None, run_conf={"date": day.isoformat()})

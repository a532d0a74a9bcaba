"""Issue 10, row 1: an integer category is one category whether or not its column holds NULLs.

Training reads the window with psycopg2 (an integer column with NULLs becomes float64 in pandas), scoring
with ADBC (int64 when the chunk has no NULL, float64 when it has one). Both must encode `3` as '3', so the
same rows get the same scores whether or not the day holds a NULL.
"""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, DAY, FIRST

pytestmark = pytest.mark.integration


def _spec(schema: str) -> Spec:
    return toy_spec(schema, features=[
        {"name": "x1", "type": "numeric"},
        {"name": "x2", "type": "numeric"},
        {"name": "color", "type": "categorical", "categories": ["red", "blue"]},
        {"name": "grade", "type": "categorical", "categories": ["0", "1", "2", "3"]},
    ])


def _load_graded_rows(engine: sa.Engine, spec: Spec) -> None:
    """The toy rows plus an integer `grade` that drives the label, NULL on every 7th row before DAY."""
    load_toy_data(engine, spec.source.table.split(".")[0], FIRST, days=25, rows_per_day=80)
    assert spec.labels is not None
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {spec.source.table} ADD COLUMN grade integer"))
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET grade = CASE WHEN id % 7 = 0 AND "
                             "event_time < :day THEN NULL ELSE id % 4 END"), {"day": DAY})
        conn.execute(sa.text(
            f"UPDATE {spec.labels.table} AS l SET y = CASE r.grade WHEN 3 THEN 1 WHEN 0 THEN 0 ELSE l.y END "
            f"FROM {spec.source.table} AS r WHERE r.id = l.id"))


def _scores(engine: sa.Engine, spec: Spec) -> dict[int, float]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT id, score FROM {spec.predictions.table} WHERE partition_date = :d"),
                            {"d": DAY}).all()
    return {int(r.id): float(r.score) for r in rows}


def test_identical_rows_score_identically_with_and_without_a_null_category(settings: Settings,
                                                                            engine: sa.Engine) -> None:
    spec = _spec(settings.schema)
    _load_graded_rows(engine, spec)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)

    score_day(engine, spec, DAY, run_id="no-null")
    without_null = _scores(engine, spec)
    with engine.begin() as conn:  # one more row on DAY, its grade NULL: the day's grade column is float64 now
        conn.execute(sa.text(
            f"INSERT INTO {spec.source.table} (id, event_time, x1, x2, color, grade) "
            "SELECT max(id) + 1, :at, 0.5, 0.5, 'red', NULL FROM " + spec.source.table),
            {"at": dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)})
    score_day(engine, spec, DAY, run_id="one-null")
    with_null = _scores(engine, spec)

    assert len(without_null) == 80 and len(with_null) == 81
    differing = {key: (score, with_null[key]) for key, score in without_null.items() if with_null[key] != score}
    assert differing == {}, f"{len(differing)} of 80 identical rows scored differently"
    # and the grade matters to the model: grade 3 rows score higher than grade 0 rows on average
    with engine.connect() as conn:
        grades = dict(conn.execute(sa.text(f"SELECT id, grade FROM {spec.source.table} WHERE id = ANY(:ids)"),
                                   {"ids": list(without_null)}).all())
    mean = {g: sum(s for k, s in without_null.items() if grades[k] == g) / sum(1 for k in grades if grades[k] == g)
            for g in (0, 3)}
    assert mean[3] > mean[0] + 0.2

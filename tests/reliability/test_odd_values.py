"""Issue 10, rows 2-4: NaN and +-Infinity in numeric features are validated, never imputed or crashed on.

PostgreSQL's float8 'NaN' is not NULL (and sorts above every number) and 'Infinity' passes `>= min`: each
test puts one such value into a day of the toy source and runs the real scoring path (GX in PostgreSQL,
ADBC extract, the registered pipeline, publish), then checks the published rows and the quarantine rows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, DAY, FIRST

pytestmark = pytest.mark.integration

RUN = "odd"
MIN_ONLY = "expect_column_values_to_be_between (min -10, max < inf)"  # x1: a missing bound is an infinite one
MIN_MAX = "expect_column_values_to_be_between (min -10, max 10)"  # x2


@pytest.fixture()
def odd(settings: Settings, engine: sa.Engine) -> Spec:
    """x1: nullable false with only a min; x2: min and max; trained on clean rows."""
    spec = toy_spec(
        settings.schema,
        features=[
            {"name": "x1", "type": "numeric", "nullable": False, "min": -10},
            {"name": "x2", "type": "numeric", "min": -10, "max": 10},
            {"name": "color", "type": "categorical", "categories": ["red", "blue"]},
        ],
        validation={"max_quarantine_share": 0.1},
    )
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    return spec


def _day_ids(engine: sa.Engine, spec: Spec) -> list[int]:
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.connect() as conn:
        return conn.execute(sa.text(
            f"SELECT id FROM {spec.source.table} WHERE event_time >= :s AND event_time < :e ORDER BY id"),
            {"s": start, "e": start + dt.timedelta(days=1)}).scalars().all()


def _set(engine: sa.Engine, spec: Spec, key: int, column: str, value: str) -> dict[str, Any]:
    """Set one source value (a PostgreSQL float8 literal such as 'NaN'); the row as quarantine should keep it."""
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET {column} = CAST(:v AS float8) WHERE id = :id"),
                     {"v": value, "id": key})
        row = conn.execute(sa.text(f"SELECT id, event_time, x1, x2, color FROM {spec.source.table} WHERE id = :id"),
                           {"id": key}).mappings().one()
    return {**row, "event_time": row["event_time"].isoformat()}


def _published(engine: sa.Engine, spec: Spec) -> list[int]:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT id FROM {spec.predictions.table} WHERE partition_date = :d ORDER BY id"),
                            {"d": DAY}).scalars().all()


def _quarantine(settings: Settings, engine: sa.Engine) -> list[tuple[str, str, list[str], dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT run_id, entity_key, reasons, row_data FROM "{settings.schema}".quarantine '
            "WHERE model_name = 'toy' AND partition_date = :d ORDER BY entity_key::bigint"), {"d": DAY}).all()
    return [(r.run_id, r.entity_key, r.reasons, r.row_data) for r in rows]


def test_nan_in_a_non_nullable_column_with_only_a_min_is_quarantined_not_imputed(
    settings: Settings, engine: sa.Engine, odd: Spec
) -> None:  # row 2
    ids = _day_ids(engine, odd)
    row = _set(engine, odd, ids[3], "x1", "NaN")
    summary = score_day(engine, odd, DAY, run_id=RUN)
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 79, 1)
    assert _published(engine, odd) == [key for key in ids if key != ids[3]]
    assert _quarantine(settings, engine) == [
        (RUN, str(ids[3]), [f"x1: {MIN_ONLY}, got NaN"], {**row, "x1": "NaN"}),
    ]


def test_nan_in_a_column_with_min_and_max_says_nan_and_keeps_it(
    settings: Settings, engine: sa.Engine, odd: Spec
) -> None:  # row 3
    ids = _day_ids(engine, odd)
    row = _set(engine, odd, ids[5], "x2", "NaN")
    summary = score_day(engine, odd, DAY, run_id=RUN)
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 79, 1)
    assert _published(engine, odd) == [key for key in ids if key != ids[5]]
    assert _quarantine(settings, engine) == [
        (RUN, str(ids[5]), [f"x2: {MIN_MAX}, got NaN"], {**row, "x2": "NaN"}),
    ]


def test_infinity_in_a_column_with_only_a_min_is_quarantined_and_the_day_published(
    settings: Settings, engine: sa.Engine, odd: Spec
) -> None:  # row 4
    ids = _day_ids(engine, odd)
    row = _set(engine, odd, ids[7], "x1", "Infinity")
    summary = score_day(engine, odd, DAY, run_id=RUN)
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 79, 1)
    assert _published(engine, odd) == [key for key in ids if key != ids[7]]
    assert _quarantine(settings, engine) == [
        (RUN, str(ids[7]), [f"x1: {MIN_ONLY}, got inf"], {**row, "x1": "inf"}),
    ]


def test_every_odd_value_at_once_quarantines_only_its_rows(settings: Settings, engine: sa.Engine, odd: Spec) -> None:
    """NaN, +Infinity and -Infinity in both columns, a NULL in the nullable one: each row keeps its value."""
    ids = _day_ids(engine, odd)
    rows = {
        ids[0]: _set(engine, odd, ids[0], "x1", "-Infinity"),
        ids[1]: _set(engine, odd, ids[1], "x2", "Infinity"),
        ids[2]: _set(engine, odd, ids[2], "x2", "-Infinity"),
    }
    with engine.begin() as conn:  # a NULL where NULL is allowed, in a row that fails for x1: kept as null
        conn.execute(sa.text(f"UPDATE {odd.source.table} SET x1 = 'NaN', x2 = NULL WHERE id = :id"), {"id": ids[4]})
    rows[ids[4]] = {**_set(engine, odd, ids[4], "x1", "NaN"), "x2": None}
    summary = score_day(engine, odd, DAY, run_id=RUN)
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 76, 4)
    assert _published(engine, odd) == [key for key in ids if key not in rows]
    assert _quarantine(settings, engine) == [
        (RUN, str(ids[0]), [f"x1: {MIN_ONLY}, got -inf"], {**rows[ids[0]], "x1": "-inf"}),
        (RUN, str(ids[1]), [f"x2: {MIN_MAX}, got inf"], {**rows[ids[1]], "x2": "inf"}),
        (RUN, str(ids[2]), [f"x2: {MIN_MAX}, got -inf"], {**rows[ids[2]], "x2": "-inf"}),
        (RUN, str(ids[4]), [f"x1: {MIN_ONLY}, got NaN"], {**rows[ids[4]], "x1": "NaN"}),
    ]


def test_a_numeric_feature_without_bounds_rejects_nan_and_infinity_too(
    settings: Settings, engine: sa.Engine, odd: Spec
) -> None:
    """Nullable, no min, no max: a NULL is imputed as designed, NaN and +-Infinity are quarantined."""
    free = odd.model_copy(update={"features": [
        f.model_copy(update={"min": None, "max": None}) if f.name == "x2" else f for f in odd.features
    ]})
    ids = _day_ids(engine, free)
    rows = {ids[0]: _set(engine, free, ids[0], "x2", "NaN"), ids[1]: _set(engine, free, ids[1], "x2", "Infinity"),
            ids[2]: _set(engine, free, ids[2], "x2", "-Infinity")}
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {free.source.table} SET x2 = NULL WHERE id = :id"), {"id": ids[3]})
    summary = score_day(engine, free, DAY, run_id=RUN)
    assert (summary.extracted, summary.scored, summary.quarantined) == (80, 77, 3)
    assert _published(engine, free) == [key for key in ids if key not in rows]  # the NULL row is scored
    unbounded = "x2: expect_column_values_to_be_between (min > -inf, max < inf)"
    assert _quarantine(settings, engine) == [
        (RUN, str(ids[0]), [f"{unbounded}, got NaN"], {**rows[ids[0]], "x2": "NaN"}),
        (RUN, str(ids[1]), [f"{unbounded}, got inf"], {**rows[ids[1]], "x2": "inf"}),
        (RUN, str(ids[2]), [f"{unbounded}, got -inf"], {**rows[ids[2]], "x2": "-inf"}),
    ]

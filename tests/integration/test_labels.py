"""The one label join (`ml_batch.model.labels`) in both data shapes, on a real PostgreSQL: training frames and
realized performance carry exactly one row per labelled source row, with that row's own label."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.metrics import roc_auc_score

from ml_batch.config import Settings
from ml_batch.errors import LabelJoinError
from ml_batch.model.training import load_labelled, split, train, window_for
from ml_batch.monitoring.performance import realized_performance
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from tests.integration.helpers import load_recurring_data, load_toy_data, recurring_spec, toy_spec
from tests.support.toy import AS_OF, DAY, FIRST

pytestmark = pytest.mark.integration

ENTITIES = 40


@pytest.fixture()
def recurring(settings: Settings, engine: sa.Engine) -> pd.DataFrame:
    return load_recurring_data(engine, settings.schema, FIRST, days=25, entities=ENTITIES)


def _own_labels(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Each loaded row's label next to the label of its own (entity, day) in the generated data."""
    merged = frame.merge(truth[["entity_id", "label_day", "y"]], left_on=["entity_id", "_event_day"],
                         right_on=["entity_id", "label_day"], how="left", validate="one_to_one")
    return merged["_label"] == merged["y"]


def test_recurring_entities_train_on_one_row_per_entity_and_day_with_its_own_label(
        settings: Settings, engine: sa.Engine, recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema)
    window = window_for(spec, AS_OF)
    frame = load_labelled(engine, spec, window)
    assert len(frame) == 10 * ENTITIES == 400  # 10 labelled days x 40 entities, not 400 x 10 days of labels
    assert not frame.duplicated(["entity_id", "_event_day"]).any()
    assert sorted(frame["_event_day"].unique()) == [window.start + dt.timedelta(days=i) for i in range(10)]
    assert _own_labels(frame, recurring).all()
    train_part, holdout = split(frame, window)
    assert (len(train_part), len(holdout)) == (7 * ENTITIES, 3 * ENTITIES)
    assert train(engine, spec, AS_OF).n_train == 280


def test_recurring_keys_without_labels_date_column_fail_naming_keys_and_the_field(
        settings: Settings, engine: sa.Engine, recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema, date_column=None)
    with pytest.raises(LabelJoinError) as failure:
        load_labelled(engine, spec, window_for(spec, AS_OF))
    message = str(failure.value)
    assert "labelled keys are on several days of source" in message
    assert "key 1 on 2026-05-01, 2026-05-02, 2026-05-03 ... (25 days)" in message
    assert message.count(" days)") == 5 and "set labels.date_column" in message


def test_two_label_rows_for_one_entity_and_day_fail(settings: Settings, engine: sa.Engine,
                                                    recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {spec.labels.table} VALUES (7, DATE '2026-05-10', 1, "
                             "TIMESTAMPTZ '2026-05-13 12:00+00')"))
    with pytest.raises(LabelJoinError, match=r"several known rows for one entity and day .*: "
                                             r"key 7 on 2026-05-10 \(2 label rows\); each needs exactly one"):
        train(engine, spec, AS_OF)


def test_two_label_rows_for_one_event_fail_and_name_the_key(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=40)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {spec.labels.table} DROP CONSTRAINT toy_labels_pkey"))
        key = conn.execute(sa.text(f"SELECT id FROM {spec.source.table} WHERE event_time >= '2026-05-12' "
                                   "ORDER BY id LIMIT 1")).scalar_one()
        conn.execute(sa.text(f"INSERT INTO {spec.labels.table} (id, y, known_at) SELECT id, 1 - y, known_at "
                             f"FROM {spec.labels.table} WHERE id = :k"), {"k": key})
    with pytest.raises(LabelJoinError, match=rf"several known rows for one key: key {key} on 2026-05-12 "
                                             r"\(2 label rows\)"):
        train(engine, spec, AS_OF)


def test_labels_recorded_after_the_as_of_day_are_never_used(settings: Settings, engine: sa.Engine,
                                                            recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema)
    late = dt.datetime.combine(AS_OF + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    with engine.begin() as conn:
        # entity 3 on 05-16 is only recorded at the first instant after the as-of day ...
        conn.execute(sa.text(f"UPDATE {spec.labels.table} SET known_at = :t "
                             "WHERE entity_id = 3 AND label_day = DATE '2026-05-16'"), {"t": late})
        # ... and a correction of entity 4 on 05-12 arrives after the as-of day: not a duplicate yet
        conn.execute(sa.text(f"INSERT INTO {spec.labels.table} SELECT entity_id, label_day, 1 - y, :t "
                             f"FROM {spec.labels.table} WHERE entity_id = 4 AND label_day = DATE '2026-05-12'"),
                     {"t": late})
    frame = load_labelled(engine, spec, window_for(spec, AS_OF))
    assert len(frame) == 399
    assert frame[(frame["entity_id"] == 3) & (frame["_event_day"] == dt.date(2026, 5, 16))].empty
    assert _own_labels(frame, recurring).all()


def test_realized_performance_on_recurring_entities_is_the_metric_of_each_day_own_labels(
        settings: Settings, engine: sa.Engine, recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema)
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    score_day(engine, spec, DAY, run_id="r1")
    records = realized_performance(engine, spec, DAY + dt.timedelta(days=3), run_id="p1")
    auc = next(r for r in records if r["metric"] == "roc_auc")
    with engine.connect() as conn:
        published = pd.read_sql(sa.text(f"SELECT entity_id, score FROM {spec.predictions.table} "
                                        "WHERE partition_date = :d"), conn, params={"d": DAY})
    truth = recurring[recurring["label_day"] == DAY][["entity_id", "y"]]
    joined = published.merge(truth, on="entity_id", validate="one_to_one")
    assert auc["n"] == len(joined) == ENTITIES
    assert auc["value"] == pytest.approx(roc_auc_score(joined["y"], joined["score"]), abs=1e-12)
    assert np.isfinite(auc["value"])


def test_realized_performance_without_labels_date_column_on_recurring_keys_fails(
        settings: Settings, engine: sa.Engine, recurring: pd.DataFrame) -> None:
    spec = recurring_spec(settings.schema)
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    score_day(engine, spec, DAY, run_id="r1")
    one_event = spec.model_copy(update={"labels": spec.labels.model_copy(update={"date_column": None})})
    with pytest.raises(LabelJoinError, match=r"realized performance of 2026-05-21 \(published predictions\): "
                                             r"labelled keys are on several days"):
        realized_performance(engine, one_event, DAY + dt.timedelta(days=3), run_id="p1")

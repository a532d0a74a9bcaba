from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import TrainingError
from ml_batch.model.training import load_labelled, split, train, window_for
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration


def test_training_set_only_holds_labels_known_on_the_as_of_day(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=3)
    data = load_toy_data(engine, settings.schema, FIRST, days=25, delay_days=3)
    window = window_for(spec, AS_OF)
    frame = load_labelled(engine, spec, window)
    days = pd.to_datetime(frame["_event_time"], utc=True).dt.date
    assert days.max() == AS_OF - dt.timedelta(days=3) == window.end
    assert days.min() == window.start
    known = data.set_index("id").loc[frame["id"], "known_at"]
    assert (known < pd.Timestamp(AS_OF + dt.timedelta(days=1), tz="UTC")).all()
    train_part, holdout = split(frame, window)
    assert train_part["_event_day"].max() < window.holdout_start <= holdout["_event_day"].min()
    assert set(holdout["_event_day"]) == {window.end - dt.timedelta(days=i) for i in range(3)}


def test_a_label_recorded_after_the_as_of_day_is_not_used(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=3)
    load_toy_data(engine, settings.schema, FIRST, days=25, delay_days=3)
    late_ids = [1, 2, 3]
    with engine.begin() as conn:
        # Rows of a day inside the window whose labels were corrected after AS_OF.
        conn.execute(
            sa.text(f"UPDATE \"{settings.schema}\".toy_labels SET known_at = :t WHERE id = ANY(:ids)"),
            {"t": dt.datetime(2026, 5, 21, 0, 0, 1, tzinfo=dt.UTC), "ids": late_ids},
        )
    frame = load_labelled(engine, spec, window_for(spec, AS_OF))
    assert not set(late_ids) & set(frame["id"])


def test_without_known_at_the_delay_alone_cuts_the_window(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=5, known_at=False)
    load_toy_data(engine, settings.schema, FIRST, days=25, delay_days=5)
    frame = load_labelled(engine, spec, window_for(spec, AS_OF))
    assert pd.to_datetime(frame["_event_time"], utc=True).dt.date.max() == dt.date(2026, 5, 15)


def test_training_fails_clearly_when_labels_have_not_arrived(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=3)
    load_toy_data(engine, settings.schema, FIRST, days=5, delay_days=3)
    with pytest.raises(TrainingError, match=r"training set .* has 0 labelled rows, expected at least 50"):
        train(engine, spec, dt.date(2026, 5, 4))


def test_binary_labels_must_be_zero_or_one(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, delay_days=3)
    load_toy_data(engine, settings.schema, FIRST, days=25, delay_days=3)
    with engine.begin() as conn:
        conn.execute(sa.text(f'UPDATE "{settings.schema}".toy_labels SET y = 2 WHERE id = 620'))
    with pytest.raises(TrainingError, match=r"label column 'y' has values \['2'\]"):
        train(engine, spec, AS_OF)


def test_spec_identifiers_are_quoted_so_odd_names_work(settings: Settings, engine: sa.Engine) -> None:
    s = settings.schema
    load_toy_data(engine, s, FIRST, days=25, delay_days=3)
    with engine.begin() as conn:
        conn.execute(sa.text(f'ALTER TABLE "{s}".toy_rows RENAME COLUMN x2 TO "Select"'))
        conn.execute(sa.text(f'ALTER TABLE "{s}".toy_rows RENAME COLUMN event_time TO "Order"'))
    spec = toy_spec(s, delay_days=3)
    data = spec.model_dump()
    data["features"][1]["name"] = "Select"
    data["source"]["date_column"] = "Order"
    odd = type(spec).model_validate(data)
    result = train(engine, odd, AS_OF)
    assert result.n_train > 0 and result.metrics["roc_auc"] > 0.7

"""The synthetic ticket-queue data: deterministic, one labelled event per ticket, four learnable classes, a
class-mix shift at the end."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_batch.demo.tickets import QUEUES, SHIFTED_QUEUE, TicketQueueConfig, generate
from ml_batch.errors import ConfigError
from ml_batch.spec import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[3] / "docs" / "examples" / "ticket_queue.yaml")
END = datetime.date(2025, 6, 30)
CONFIG = TicketQueueConfig(end_date=END, days=40, rows_per_day=300)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(CONFIG)


def test_same_seed_same_data_and_another_seed_differs(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    again = generate(CONFIG)
    pd.testing.assert_frame_equal(frames[0], again[0])
    pd.testing.assert_frame_equal(frames[1], again[1])
    other = generate(TicketQueueConfig(end_date=END, days=40, rows_per_day=300, seed=7))
    assert not frames[1]["queue"].equals(other[1]["queue"])


def test_columns_and_values_are_those_of_the_spec(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tickets, labels = frames
    assert SPEC.model.task == "multiclass"
    assert list(tickets.columns) == [SPEC.source.key, SPEC.source.date_column, *SPEC.feature_names]
    assert list(labels.columns) == [SPEC.labels.key, SPEC.labels.column, SPEC.labels.known_at_column]
    assert tickets["ticket_id"].is_unique and tickets["opened_at"].is_monotonic_increasing
    days = tickets["opened_at"].dt.date
    assert (days.min(), days.max(), days.nunique()) == (CONFIG.first_day, END, 40)
    assert 250 < days.value_counts().mean() < 350
    for feature in SPEC.features:
        column = tickets[feature.name]
        assert column.notna().all()
        if feature.categories:
            assert set(column) == set(feature.categories)
        if feature.min is not None:
            assert column.ge(feature.min).all(), feature.name
        if feature.max is not None:
            assert column.le(feature.max).all(), feature.name


def test_one_label_per_ticket_recorded_after_the_delay(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tickets, labels = frames
    assert labels["ticket_id"].is_unique and set(labels["queue"]) == set(QUEUES)
    joined = labels.merge(tickets[["ticket_id", "opened_at"]], on="ticket_id", validate="one_to_one")
    assert (joined["resolved_at"] - joined["opened_at"] == pd.Timedelta(days=CONFIG.label_delay_days)).all()
    assert joined["resolved_at"].max() <= pd.Timestamp(CONFIG.now)
    # the last label_delay_days days are not labelled yet; every earlier ticket is
    unlabelled = tickets[~tickets["ticket_id"].isin(labels["ticket_id"])]
    assert unlabelled["opened_at"].min() > pd.Timestamp(CONFIG.now) - pd.Timedelta(days=CONFIG.label_delay_days + 1)


def test_the_queue_is_learned_from_the_features_better_than_by_chance(
        frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    tickets, labels = frames
    data = tickets.merge(labels, on="ticket_id")
    x = pd.get_dummies(data[SPEC.feature_names].assign(
        message_length=np.log(data["message_length"]), account_age_days=np.log1p(data["account_age_days"])),
        columns=["channel"], dtype=float)
    x = StandardScaler().fit_transform(x)
    half = len(data) // 2
    model = LogisticRegression(max_iter=1000).fit(x[:half], data["queue"][:half])
    accuracy = (model.predict(x[half:]) == data["queue"][half:]).mean()
    majority = data["queue"][half:].value_counts(normalize=True).max()
    assert accuracy > majority + 0.15, (accuracy, majority)
    assert data["queue"].value_counts(normalize=True).min() > 0.08  # every class is well represented


def test_the_shift_moves_the_class_mix_towards_technical(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    tickets, labels = frames
    data = tickets.merge(labels, on="ticket_id")
    shifted = data["opened_at"].dt.date >= CONFIG.shift_start
    share = data.groupby(shifted)["queue"].apply(lambda q: (q == SHIFTED_QUEUE).mean())
    assert share[True] > share[False] + 0.1


def test_invalid_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"rows_per_day=0 is out of range"):
        TicketQueueConfig(end_date=END, rows_per_day=0)
    with pytest.raises(ConfigError, match=r"shift_days=40 is out of range"):
        TicketQueueConfig(end_date=END, days=40, shift_days=40)

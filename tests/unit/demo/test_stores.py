"""The synthetic store-demand data: deterministic, one row per store and day, labelled late, shifted at the end."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_batch.demo.stores import SHIFTED_REGION, StoreDemandConfig, generate
from ml_batch.errors import ConfigError
from ml_batch.spec import load_spec

SPEC = load_spec(Path(__file__).resolve().parents[3] / "include" / "models" / "store_demand.yaml")
END = datetime.date(2025, 6, 30)
CONFIG = StoreDemandConfig(end_date=END, days=60, stores=80)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(CONFIG)


def test_same_seed_same_data_and_another_seed_differs(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    again = generate(CONFIG)
    pd.testing.assert_frame_equal(frames[0], again[0])
    pd.testing.assert_frame_equal(frames[1], again[1])
    other = generate(StoreDemandConfig(end_date=END, days=60, stores=80, seed=7))
    assert not frames[1]["units"].equals(other[1]["units"])


def test_every_store_on_every_day_with_columns_of_the_spec(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    days, sales = frames
    assert list(days.columns) == [SPEC.source.key, SPEC.source.date_column, *SPEC.feature_names]
    assert list(sales.columns) == [SPEC.labels.key, SPEC.labels.date_column, SPEC.labels.column,
                                   SPEC.labels.known_at_column]
    assert len(days) == 60 * 80 and not days.duplicated(["store_id", "day"]).any()
    assert days.groupby("day")["store_id"].nunique().eq(80).all()
    for feature in SPEC.features:
        column = days[feature.name]
        if feature.categories:
            assert set(column) <= set(feature.categories)
        if feature.min is not None:
            assert column.dropna().ge(feature.min).all()
        if feature.max is not None:
            assert column.dropna().le(feature.max).all()
        assert feature.nullable or column.notna().all()
    # units a week earlier, known when a day is scored: null only in the first week
    assert days.loc[days["day"] < CONFIG.first_day + datetime.timedelta(days=7), "units_lag7"].isna().all()
    assert days.loc[days["day"] >= CONFIG.first_day + datetime.timedelta(days=7), "units_lag7"].notna().all()


def test_one_label_per_store_and_day_recorded_after_the_delay(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, sales = frames
    assert not sales.duplicated(["store_id", "sales_date"]).any()
    labelled_days = sorted(sales["sales_date"].unique())
    assert labelled_days[-1] == END - datetime.timedelta(days=CONFIG.label_delay_days)
    delay = sales["recorded_at"] - pd.to_datetime(sales["sales_date"]).dt.tz_localize("UTC")
    assert delay.eq(pd.Timedelta(days=CONFIG.label_delay_days, hours=6)).all()
    # the labels differ day to day for one store: another day's label would be a wrong answer
    assert sales[sales["store_id"] == 1]["units"].nunique() > 20


def test_demand_of_the_shifted_region_drops_at_the_end(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    days, sales = frames
    joined = days.merge(sales, left_on=["store_id", "day"], right_on=["store_id", "sales_date"])
    late = joined["day"] >= CONFIG.shift_start
    east = joined["region"] == SHIFTED_REGION
    ratio = (joined[late & east]["units"].mean() / joined[~late & east]["units"].mean()) / (
        joined[late & ~east]["units"].mean() / joined[~late & ~east]["units"].mean())
    assert ratio < 0.8
    assert np.isclose(joined[late]["temperature"].mean() - joined[~late]["temperature"].mean(), 6, atol=2)


def test_invalid_config_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"stores=0 is out of range"):
        StoreDemandConfig(end_date=END, stores=0)

"""Synthetic daily store demand: the recurring-entity demo (`include/models/store_demand.yaml`).

Every store is scored every day, and every (store, day) gets its own label, the units it sold that day, so
the same key appears on every day of the source and of the labels (`labels.date_column`). `generate` builds
two frames from a seed, with no I/O; `seed` (re)creates schema `demo`'s two store tables in one transaction:

* `stores` stores in four regions, each with a size and a base demand, every day for `days` days ending at
  `end_date`;
* units sold follow the store's base demand, a weekly season (weekends sell most), a few holidays, promotions
  and the day's temperature, with multiplicative noise; `units_lag7` is the store's units a week earlier (null
  in the first week), a feature that is known when the day is scored;
* a label per store and day, recorded `label_delay_days` after the day (sales figures are final a week
  later), so the last `label_delay_days` days have no label yet;
* a late shift over the last `shift_days` days: a competitor opens in region `east` (demand there drops
  by a third) and a heat wave lifts temperatures by 6 degrees.

The same config always gives the same data. Column names, ranges and categories match the spec.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.demo.source import SCHEMA, DemoDays, check_int, replace_tables

logger = logging.getLogger(__name__)

REGIONS = ("north", "south", "east", "west")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SHIFTED_REGION = "east"

_REGION_DEMAND = {"north": 0.9, "south": 1.1, "east": 1.0, "west": 1.05}
_REGION_TEMPERATURE = {"north": 9.0, "south": 21.0, "east": 14.0, "west": 16.0}
_WEEKDAY_DEMAND = np.array([0.88, 0.86, 0.9, 0.95, 1.12, 1.38, 1.16])  # Monday first
# Days of the series (counted from its first day) that are public holidays: every store sells more.
_HOLIDAY_EVERY_DAYS = 29
_HOLIDAY_LIFT = 1.6
_PROMO_SHARE = 0.12
_PROMO_LIFT = 1.3
_NOISE_SIGMA = 0.12
_SHIFT_REGION_FACTOR = 0.67
_SHIFT_HEAT = 6.0

metadata = sa.MetaData(schema=SCHEMA)

store_days = sa.Table(
    "store_days",
    metadata,
    sa.Column("store_id", sa.Integer, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("region", sa.Text, nullable=False),
    sa.Column("store_size", sa.Double, nullable=False),
    sa.Column("day_of_week", sa.Text, nullable=False),
    sa.Column("is_holiday", sa.SmallInteger, nullable=False),
    sa.Column("promo", sa.SmallInteger, nullable=False),
    sa.Column("temperature", sa.Double, nullable=False),
    sa.Column("units_lag7", sa.Double),
    sa.PrimaryKeyConstraint("store_id", "day", name="store_days_pkey"),
    sa.Index("ix_store_days_day", "day"),
)

store_sales = sa.Table(
    "store_sales",
    metadata,
    sa.Column("store_id", sa.Integer, nullable=False),
    sa.Column("sales_date", sa.Date, nullable=False),
    sa.Column("units", sa.Double, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("store_id", "sales_date", name="store_sales_pkey"),
)

DAY_COLUMNS = [column.name for column in store_days.columns]
SALES_COLUMNS = [column.name for column in store_sales.columns]


@dataclass(frozen=True)
class StoreDemandConfig(DemoDays):
    """What to generate; invalid values raise `ConfigError` on construction.

    Attributes:
        end_date: Last day (inclusive, UTC). The data's "now" is the midnight after it.
        days: Number of days, ending at `end_date`.
        stores: Number of stores, each present every day.
        shift_days: The last `shift_days` days carry the shift (0: no shift).
        seed: Seed of `numpy.random.default_rng`; the same config always gives the same data.
        label_delay_days: Days between a sales day and the moment its units are final.
    """

    end_date: datetime.date
    days: int = 120
    stores: int = 500
    shift_days: int = 21
    seed: int = 42
    label_delay_days: int = 7

    def __post_init__(self) -> None:
        self.check_days(min_days=8)  # a week of history before `units_lag7` is known
        check_int("stores", self.stores, 1, 100_000)


@dataclass(frozen=True)
class StoreSeedSummary:
    store_days: int
    sales: int
    stores: int
    first_day: datetime.date
    last_day: datetime.date
    shift_start: datetime.date


def generate(config: StoreDemandConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(store_days, store_sales)`: one row per store and day, ordered by day then store; the sales (labels)
    of the (store, day)s whose units are final at `config.now`, with `recorded_at` = day + delay, 06:00 UTC."""
    rng = np.random.default_rng(config.seed)
    n_stores, n_days = config.stores, config.days
    region = np.asarray(REGIONS, dtype=object)[rng.integers(0, len(REGIONS), n_stores)]
    size = np.clip(np.round(rng.lognormal(np.log(1_200), 0.45, n_stores), 0), 200, 5_000)
    base = size / 12 * np.array([_REGION_DEMAND[r] for r in region]) * rng.lognormal(0, 0.2, n_stores)

    days = pd.date_range(config.first_day, periods=n_days, freq="D")
    weekday = days.day_of_week.to_numpy()
    holiday = (np.arange(n_days) % _HOLIDAY_EVERY_DAYS) == _HOLIDAY_EVERY_DAYS // 2
    shifted = np.arange(n_days) >= n_days - config.shift_days
    season = 4.0 * np.sin(2 * np.pi * np.arange(n_days) / 365.0)

    # (days x stores) grids, flattened day by day
    temperature = (np.array([_REGION_TEMPERATURE[r] for r in region])[None, :] + season[:, None]
                   + rng.normal(0, 3.0, (n_days, n_stores)) + np.where(shifted, _SHIFT_HEAT, 0.0)[:, None])
    promo = rng.random((n_days, n_stores)) < _PROMO_SHARE
    demand = (base[None, :] * _WEEKDAY_DEMAND[weekday][:, None]
              * np.where(holiday, _HOLIDAY_LIFT, 1.0)[:, None] * np.where(promo, _PROMO_LIFT, 1.0)
              * (1.0 + 0.012 * np.clip(temperature - 18.0, -15.0, 20.0))
              * np.where(shifted[:, None] & (region == SHIFTED_REGION)[None, :], _SHIFT_REGION_FACTOR, 1.0))
    units = np.round(demand * rng.lognormal(0, _NOISE_SIGMA, (n_days, n_stores)), 0)
    lag7 = np.full_like(units, np.nan)
    lag7[7:] = units[:-7]

    day_values = np.repeat(days.date, n_stores)
    frame = pd.DataFrame({
        "store_id": np.tile(np.arange(1, n_stores + 1, dtype=np.int64), n_days),
        "day": day_values,
        "region": np.tile(region, n_days),
        "store_size": np.tile(size, n_days),
        "day_of_week": np.repeat(np.asarray(WEEKDAYS, dtype=object)[weekday], n_stores),
        "is_holiday": np.repeat(holiday.astype(np.int16), n_stores),
        "promo": promo.ravel().astype(np.int16),
        "temperature": np.round(temperature.ravel(), 1),
        "units_lag7": lag7.ravel(),
    })[DAY_COLUMNS]
    recorded_at = (pd.to_datetime(day_values).tz_localize("UTC")
                   + pd.Timedelta(days=config.label_delay_days, hours=6))
    known = np.asarray(recorded_at < pd.Timestamp(config.now))
    sales = pd.DataFrame({
        "store_id": frame["store_id"].to_numpy()[known],
        "sales_date": day_values[known],
        "units": units.ravel()[known],
        "recorded_at": recorded_at[known],
    })[SALES_COLUMNS]
    return frame, sales


def seed(engine: sa.Engine, config: StoreDemandConfig) -> StoreSeedSummary:
    """(Re)create `demo.store_days` and `demo.store_sales` and load generated data, in one transaction."""
    started = time.perf_counter()
    frame, sales = generate(config)
    replace_tables(engine, metadata, [(store_days, frame), (store_sales, sales)])
    logger.info("seeded %d store days and %d sales rows (%s to %s) in %.1fs", len(frame), len(sales),
                config.first_day, config.end_date, time.perf_counter() - started)
    return StoreSeedSummary(store_days=len(frame), sales=len(sales), stores=config.stores,
                            first_day=config.first_day, last_day=config.end_date, shift_start=config.shift_start)

"""A source whose features are shared by every row of a day: rides with the day's weather joined.

The case the issue's new user tried on a real public data set (daily events with the hour's weather joined):
`temp`, `humidity` and `weekday` are one value per day, shared by all of that day's rows; `hour`, `distance`
and `member` vary per row. The weather follows a seasonal cycle, so a model trained on January-February has
never seen a July temperature: every July day lies entirely above the training maximum.

The label (a long ride) depends on temperature with an optimum near 18 degrees: the training window only
sees the rising half (warmer -> more long rides), July the falling half, so a model trained in winter is
confidently wrong in July (for the estimate's reliability tests).

Everything is seeded: the same arguments always give the same rows.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ml_batch.spec import FeatureSpec, Spec, load_spec

REPO = Path(__file__).resolve().parents[2]
TRAIN_START = dt.date(2026, 1, 1)
TRAIN_DAYS = 59
"""January and February 2026: the training window."""
JULY_START = dt.date(2026, 7, 1)
JULY_DAYS = 31
FEATURES = [
    FeatureSpec(name="temp", type="numeric", nullable=False),
    FeatureSpec(name="humidity", type="numeric", nullable=False),
    FeatureSpec(name="weekday", type="categorical", nullable=False),
    FeatureSpec(name="hour", type="numeric", nullable=False),
    FeatureSpec(name="distance", type="numeric", nullable=True),
    FeatureSpec(name="member", type="categorical", nullable=False),
]
SHARED = ("temp", "humidity", "weekday")
"""The features every row of a day shares."""
_OPTIMUM = 18.0


@dataclass(frozen=True)
class WeatherDays:
    """Rows of consecutive days: the features, a label per row and each row's day."""

    frame: pd.DataFrame
    labels: np.ndarray
    days: np.ndarray

    def day(self, day: np.datetime64) -> tuple[pd.DataFrame, np.ndarray]:
        """The feature rows and labels of one day."""
        on_day = self.days == day
        return self.frame.loc[on_day].reset_index(drop=True), self.labels[on_day]

    def unique_days(self) -> list[np.datetime64]:
        """The days, in order."""
        return list(np.unique(self.days))


def weather_spec() -> Spec:
    """The shipped credit demo spec with this source's features (the drift settings stay the defaults)."""
    shipped = load_spec(REPO / "include" / "models" / "credit_default.yaml")
    return shipped.model_copy(update={"features": FEATURES, "drift": type(shipped.drift)()})


def seasonal_temp(day: dt.date) -> float:
    """The climate's mean temperature of a day of the year: about 1 degree in mid-January, 25 in mid-July."""
    return 13.0 - 12.0 * float(np.cos(2 * np.pi * (day.timetuple().tm_yday - 15) / 365.0))


def daily_weather(start: dt.date, days: int, rows_per_day: int, seed: int) -> WeatherDays:
    """`days` consecutive days from `start`, `rows_per_day` rows each (seeded).

    Each day draws its weather once: `temp` = the seasonal mean + normal(0, 2.5), `humidity` falling with
    temperature + normal(0, 4), and its weekday; each row its `hour`, `distance` (lognormal, 2% null) and
    `member` (70% members). The label is a long ride, more likely the closer `temp` is to 18 degrees.
    """
    rng = np.random.default_rng([seed, start.toordinal(), days, rows_per_day])
    calendar = [start + dt.timedelta(days=i) for i in range(days)]
    temp_of_day = np.array([seasonal_temp(day) for day in calendar]) + rng.normal(0, 2.5, days)
    humidity_of_day = np.clip(80 - 0.8 * temp_of_day + rng.normal(0, 4, days), 10, 100)
    index = np.repeat(np.arange(days), rows_per_day)
    n = days * rows_per_day
    distance = rng.lognormal(1.0, 0.5, n)
    distance[rng.random(n) < 0.02] = np.nan
    member = np.where(rng.random(n) < 0.7, "member", "casual").astype(object)
    frame = pd.DataFrame({
        "temp": np.round(temp_of_day[index], 1),
        "humidity": np.round(humidity_of_day[index], 0),
        "weekday": np.array([day.strftime("%a") for day in calendar], dtype=object)[index],
        "hour": rng.integers(6, 23, n).astype(np.float64),
        "distance": distance,
        "member": member,
    })
    comfort = -np.abs(frame["temp"].to_numpy() - _OPTIMUM) / 6.0
    logit = 0.3 + comfort + 0.4 * (member == "casual") + 0.2 * np.nan_to_num(np.log(distance), nan=1.0)
    labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    day_values = np.array([np.datetime64(day) for day in calendar])[index]
    return WeatherDays(frame, labels, day_values)


SOURCE_TABLE = "weather_rides"
LABEL_TABLE = "weather_labels"
LABEL_DELAY_DAYS = 3
"""Labels of the loaded source are known this many days after their ride (at 12:00 UTC)."""


def weather_source_spec(schema: str, *, window_days: int, holdout_days: int, min_score: float = 0.6,
                        delay_days: int = LABEL_DELAY_DAYS) -> Spec:
    """`weather_spec()` reading the tables `load_weather_source` writes in `schema` (default drift settings),
    as model `weather_rides` with the given training window, holdout and ROC AUC floor (the weather explains
    little of a winter ride: the holdout's AUC is near 0.63, under the credit demo's floor 0.70)."""
    base = weather_spec()
    return base.model_copy(update={
        "name": "weather_rides",
        "source": base.source.model_copy(update={
            "table": f"{schema}.{SOURCE_TABLE}", "key": "ride_id", "date_column": "started_at"}),
        "labels": base.labels.model_copy(update={
            "table": f"{schema}.{LABEL_TABLE}", "key": "ride_id", "column": "long_ride",
            "delay_days": delay_days, "known_at_column": "known_at"}),
        "training": base.training.model_copy(update={
            "window_days": window_days, "holdout_days": holdout_days, "min_score": min_score}),
        "predictions": base.predictions.model_copy(update={"table": f"{schema}.weather_ride_scores"}),
    })


def load_weather_source(engine: sa.Engine, schema: str, periods: Sequence[tuple[dt.date, int]], *,
                        rows_per_day: int, seed: int = 0, delay_days: int = LABEL_DELAY_DAYS) -> pd.DataFrame:
    """Write `daily_weather` rows of each (start, days) period into `schema`'s source and label tables.

    The source (`weather_rides`: ride_id, started_at and the features) has each ride start in its day at its
    `hour`, plus seeded minutes; the labels (`weather_labels`: ride_id, long_ride, known_at) are known
    `delay_days` after the ride's day at 12:00 UTC. Returns every written row, with `day` and the label.
    """
    parts = []
    for start, days in periods:
        weather = daily_weather(start, days, rows_per_day, seed)
        part = weather.frame.copy()
        part["day"] = pd.to_datetime(weather.days).date
        part["long_ride"] = weather.labels
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    rng = np.random.default_rng([seed, len(frame)])
    frame.insert(0, "ride_id", np.arange(1, len(frame) + 1))
    frame["started_at"] = [
        dt.datetime.combine(day, dt.time(int(hour)), tzinfo=dt.UTC) + dt.timedelta(minutes=int(minute))
        for day, hour, minute in zip(frame["day"], frame["hour"], rng.integers(0, 60, len(frame)), strict=True)
    ]
    frame["known_at"] = [dt.datetime.combine(day + dt.timedelta(days=delay_days), dt.time(12), tzinfo=dt.UTC)
                         for day in frame["day"]]
    source = ["ride_id", "started_at", "temp", "humidity", "weekday", "hour", "distance", "member"]
    labels = ["ride_id", "long_ride", "known_at"]
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{schema}".{SOURCE_TABLE}, "{schema}".{LABEL_TABLE}'))
        conn.execute(sa.text(
            f'CREATE TABLE "{schema}".{SOURCE_TABLE} (ride_id bigint primary key, started_at timestamptz not null, '
            "temp double precision, humidity double precision, weekday text, hour double precision, "
            "distance double precision, member text)"))
        conn.execute(sa.text(f'CREATE TABLE "{schema}".{LABEL_TABLE} (ride_id bigint primary key, '
                             "long_ride smallint, known_at timestamptz)"))
        driver = conn.connection.driver_connection
        assert driver is not None, "a pooled connection always has its driver's connection"
        cursor = driver.cursor()
        for table, columns in ((SOURCE_TABLE, source), (LABEL_TABLE, labels)):
            buffer = io.StringIO()
            frame[columns].to_csv(buffer, index=False, header=False)
            buffer.seek(0)
            cursor.copy_expert(f'COPY "{schema}".{table} ({", ".join(columns)}) FROM STDIN WITH (FORMAT csv)',
                               buffer)
    return frame

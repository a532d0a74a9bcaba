"""The synthetic demo data: deterministic, within the demo spec's expectations, labelled late, shifted at the end."""

from __future__ import annotations

import datetime
from pathlib import Path

import pandas as pd
import pytest

from ml_batch.demo.credit import SHIFTED_CHANNEL, DemoConfig, generate
from ml_batch.errors import ConfigError
from ml_batch.spec import Spec

SPEC_PATH = Path(__file__).resolve().parents[3] / "include" / "models" / "credit_default.yaml"
END = datetime.date(2025, 6, 30)
CONFIG = DemoConfig(end_date=END)



@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def applications(frames: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return frames[0]


@pytest.fixture(scope="module")
def outcomes(frames: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return frames[1]


def _days(frame: pd.DataFrame) -> pd.Series:
    return frame["applied_at"].dt.date


def test_same_seed_gives_identical_frames_and_another_seed_differs() -> None:
    config = DemoConfig(end_date=END, days=10, rows_per_day=300, shift_days=3)
    first, second = generate(config), generate(config)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    other = generate(DemoConfig(end_date=END, days=10, rows_per_day=300, shift_days=3, seed=43))[0]
    assert not first[0].drop(columns="application_id").head(len(other)).equals(
        other.drop(columns="application_id").head(len(first[0]))
    )


def test_columns_match_the_spec(applications: pd.DataFrame, outcomes: pd.DataFrame, spec: Spec) -> None:
    assert list(applications.columns) == [spec.source.key, spec.source.date_column, *spec.feature_names]
    assert list(outcomes.columns) == [spec.labels.key, spec.labels.column, spec.labels.known_at_column]


def test_rows_per_day_within_range_and_fewer_at_weekends(applications: pd.DataFrame) -> None:
    per_day = applications.groupby(_days(applications)).size()
    assert list(per_day.index) == [CONFIG.first_day + datetime.timedelta(days=i) for i in range(CONFIG.days)]
    assert per_day.between(1_000, 5_000).all(), per_day.describe()
    weekend = pd.Series([day.weekday() >= 5 for day in per_day.index], index=per_day.index)
    assert per_day[weekend].mean() < 0.85 * per_day[~weekend].mean()


def test_ids_sequential_and_times_sorted(applications: pd.DataFrame) -> None:
    assert applications["application_id"].tolist() == list(range(1, len(applications) + 1))
    assert applications["applied_at"].is_monotonic_increasing
    assert str(applications["applied_at"].dt.tz) == "UTC"


def test_nulls_only_in_nullable_features(applications: pd.DataFrame, spec: Spec) -> None:
    null_share = applications.isna().mean()
    for feature in spec.features:
        if feature.nullable:
            assert 0 < null_share[feature.name] < 0.08, (feature.name, null_share[feature.name])
        else:
            assert null_share[feature.name] == 0, feature.name
    assert null_share[["application_id", "applied_at"]].eq(0).all()


def test_values_within_spec_ranges_and_categories(applications: pd.DataFrame, spec: Spec) -> None:
    for feature in spec.features:
        values = applications[feature.name].dropna()
        if feature.name == "age":
            continue
        if feature.type == "numeric":
            assert feature.min is not None and feature.max is not None
            assert values.between(feature.min, feature.max).all(), (feature.name, values.min(), values.max())
        elif feature.categories is not None:
            assert set(values) == set(feature.categories), feature.name


def test_a_few_ages_are_typos_outside_the_spec_range(applications: pd.DataFrame) -> None:
    ages = applications["age"]
    typos = ~ages.between(18, 100)
    assert 0.001 < typos.mean() < 0.004
    assert ages[~typos].between(18, 80).all()
    assert ((ages[typos] < 18) | (ages[typos] >= 300)).all()


def test_shift_is_real_and_confined_to_the_last_days(applications: pd.DataFrame) -> None:
    days = _days(applications)
    shifted = days >= CONFIG.shift_start
    assert CONFIG.shift_start == END - datetime.timedelta(days=CONFIG.shift_days - 1)
    assert sorted(days[shifted].unique())[0] == CONFIG.shift_start
    reference, window = applications[~shifted], applications[shifted]
    assert window["income"].mean() < 0.85 * reference["income"].mean()
    assert window["utilization"].mean() > reference["utilization"].mean() + 0.05
    assert (reference["channel"] == SHIFTED_CHANNEL).sum() == 0
    assert (window["channel"] == SHIFTED_CHANNEL).mean() > 0.1
    consolidation = (reference["purpose"] == "debt_consolidation").mean()
    assert (window["purpose"] == "debt_consolidation").mean() > consolidation + 0.05


def test_reference_days_are_identically_distributed(applications: pd.DataFrame) -> None:
    reference = applications[_days(applications) < CONFIG.shift_start]
    halves = reference.iloc[: len(reference) // 2], reference.iloc[len(reference) // 2 :]
    assert halves[1]["income"].mean() == pytest.approx(halves[0]["income"].mean(), rel=0.03)
    assert halves[1]["utilization"].mean() == pytest.approx(halves[0]["utilization"].mean(), rel=0.03)


def test_outcomes_arrive_after_the_label_delay(applications: pd.DataFrame, outcomes: pd.DataFrame) -> None:
    joined = outcomes.merge(applications[["application_id", "applied_at"]], on="application_id", validate="1:1")
    delay = pd.Timedelta(days=CONFIG.label_delay_days)
    assert (joined["observed_at"] == joined["applied_at"] + delay).all()
    now = pd.Timestamp(END + datetime.timedelta(days=1), tz="UTC")
    assert (joined["observed_at"] <= now).all()
    # Every application whose outcome is due by "now" has one: whole days up to end_date - delay.
    last_labelled = END - datetime.timedelta(days=CONFIG.label_delay_days)
    assert set(_days(joined)) == {d for d in _days(applications) if d <= last_labelled}
    assert len(joined) == (_days(applications) <= last_labelled).sum()


def test_default_rate_is_plausible(outcomes: pd.DataFrame) -> None:
    assert set(outcomes["defaulted"].unique()) == {0, 1}
    assert 0.05 <= outcomes["defaulted"].mean() <= 0.20


def test_shift_of_zero_days_means_no_shift() -> None:
    config = DemoConfig(end_date=END, days=5, rows_per_day=500, shift_days=0)
    applications, _ = generate(config)
    assert config.shift_start == END + datetime.timedelta(days=1)
    assert (applications["channel"] == SHIFTED_CHANNEL).sum() == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"days": 0}, "days=0 is out of range: expected an integer from 1 to 3650"),
        ({"rows_per_day": 0}, "rows_per_day=0 is out of range"),
        ({"shift_days": 120}, "shift_days=120 is out of range: expected an integer from 0 to 119"),
        ({"shift_days": -1}, "shift_days=-1 is out of range"),
        ({"seed": -5}, "seed=-5 is out of range"),
        ({"label_delay_days": -1}, "label_delay_days=-1 is out of range"),
        ({"days": 2.5}, "days=2.5 is out of range: expected an integer"),
        ({"end_date": "2025-06-30"}, "end_date='2025-06-30' is not a date"),
    ],
)
def test_bad_config_raises_config_error_naming_the_value(changes: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"end_date": END, **changes}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        DemoConfig(**arguments)  # type: ignore[arg-type]

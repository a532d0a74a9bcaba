"""Thresholds (`ml_batch.monitoring.thresholds`): calibrated on the reference's own days, never below the
fixed ones, fixed without enough days."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import DriftResult, check_drift
from ml_batch.monitoring.inputs import SCORE
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.support import out_of_support_text
from ml_batch.monitoring.thresholds import feature_thresholds
from ml_batch.spec import Spec
from tests.support.daily_weather import (
    JULY_DAYS,
    JULY_START,
    TRAIN_DAYS,
    TRAIN_START,
    WeatherDays,
    daily_weather,
    weather_spec,
)
from tests.unit.monitoring.data import clustered_days, make_frame, rows_of


def test_calibrated_thresholds_flag_no_reference_day_that_fixed_thresholds_flag(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, scores, days, profile = clustered
    fixed = spec.model_copy(update={"drift": spec.drift.model_copy(update={"thresholds": "fixed"})})
    calibrated_flags, fixed_flags = [], []
    for day in np.unique(days):
        on_day = days == day
        part, part_scores = frame.loc[on_day].reset_index(drop=True), scores[on_day]
        calibrated_flags.append(check_drift(spec, profile, part, part_scores).dataset_drift)
        fixed_flags.append(check_drift(fixed, profile, part, part_scores).dataset_drift)
    assert sum(fixed_flags) >= 20  # the failure calibration fixes: most of the reference's own days "drifted"
    assert sum(calibrated_flags) == 0
    result = check_drift(spec, profile, frame.loc[days == days[0]].reset_index(drop=True), scores[days == days[0]])
    assert result.threshold_source == "calibrated"
    age = rows_of(result, "age")
    widest_day = max(profile["calibration"]["values"]["age"]["psi"])
    assert age["psi"].detail["calibrated_threshold"] == pytest.approx(widest_day)
    assert widest_day > spec.drift.psi_threshold  # clustered days: calibration widens the threshold
    assert age["psi"].threshold == pytest.approx(widest_day)
    assert age["psi"].detail["threshold_source"] == "calibrated"


def test_calibrated_thresholds_still_flag_a_real_shift(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    _, _, _, profile = clustered
    shifted, scores = make_frame(800, seed=99)
    shifted["income"] = shifted["income"] * 0.5
    shifted["utilization"] = shifted["utilization"] + 0.3
    shifted["age"] = shifted["age"] + 25
    shifted["debt_ratio"] = shifted["debt_ratio"] * 2
    shifted["channel"] = "crypto_partner"
    result = check_drift(spec, profile, shifted, scores)
    assert result.dataset_drift
    assert {"income", "utilization", "age", "debt_ratio", "channel"} <= set(result.drifted_features)


def test_thresholds_fall_back_to_fixed_without_enough_calibration_days(spec: Spec) -> None:
    frame, scores, days = clustered_days(4, 500, seed=5)
    profile = build_profile(spec, frame, scores, days=days)
    result = check_drift(spec, profile, frame.iloc[:500], scores[:500])
    assert result.threshold_source == "fixed"
    psi_row = rows_of(result, "age")["psi"]
    assert psi_row.threshold == spec.drift.psi_threshold
    assert "fewer than calibration_min_days 7" in psi_row.detail["threshold_note"]


def test_a_calibrated_threshold_is_never_below_the_fixed_one(
    spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]
) -> None:
    # Days that are random samples of the reference vary less than the fixed thresholds allow: the fixed
    # effect sizes stay in charge (a maximum over a few days of noise alone would flag ordinary days).
    frame, scores = reference
    days = np.repeat(pd.date_range("2026-03-01", periods=10).to_numpy(), len(frame) // 10)
    profile = build_profile(spec, frame, scores, days=days)
    result = check_drift(spec, profile, *make_frame(5000, seed=8))
    ks_row = rows_of(result, "income")["ks"]
    assert ks_row.detail["calibrated_threshold"] < spec.drift.ks_threshold == ks_row.threshold
    assert result.threshold_source == "calibrated" and result.drifted_features == []


def test_the_scores_are_calibrated_on_their_own_days(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    _, _, _, profile = clustered
    without_score_days = {**profile, "calibration": {k: v for k, v in profile["calibration"].items()
                                                     if k not in ("score", "score_days")}}
    assert feature_thresholds(spec, profile, SCORE).source == "calibrated"
    fallback = feature_thresholds(spec, without_score_days, SCORE)
    assert fallback.source == "fixed" and fallback.note == "calibrated on 0 days, fewer than calibration_min_days 7"


# The within-day-shared source (tests.support.daily_weather): temp, humidity and weekday are one value per day.
# As in production, the reference is the training days and the holdout (its last 10 days) widens the support.
@pytest.fixture(scope="module")
def weather() -> tuple[Spec, dict[str, Any], WeatherDays, WeatherDays]:
    spec = weather_spec()
    window = daily_weather(TRAIN_START, TRAIN_DAYS, 400, seed=1)
    in_reference = window.days < window.unique_days()[-10]
    reference = window.frame.loc[in_reference].reset_index(drop=True)
    holdout = window.frame.loc[~in_reference].reset_index(drop=True)
    profile = build_profile(spec, reference, _weather_scores(holdout), days=window.days[in_reference],
                            score_days=window.days[~in_reference], support_frame=holdout)
    return spec, json.loads(json.dumps(profile)), window, daily_weather(JULY_START, JULY_DAYS, 400, seed=2)


def _weather_scores(frame: pd.DataFrame) -> np.ndarray:
    """A winter model's scores: warmer, more long rides."""
    return np.asarray(1 / (1 + np.exp(-(0.15 * frame["temp"].to_numpy() - 0.5))))


def _checks(spec: Spec, profile: dict[str, Any], days: WeatherDays) -> list[DriftResult]:
    results = []
    for day in days.unique_days():
        frame, _ = days.day(day)
        results.append(check_drift(spec, profile, frame, _weather_scores(frame)))
    return results


def test_ks_and_psi_saturate_on_features_shared_within_a_day(
    weather: tuple[Spec, dict[str, Any], WeatherDays, WeatherDays]
) -> None:
    # The failure of the last round, kept visible: one reference day of a shared feature against the rest
    # already has a KS D of 1, so a threshold calibrated on those days can never be exceeded.
    spec, profile, _, july = weather
    result = _checks(spec, profile, july)[0]
    temp = rows_of(result, "temp")
    assert temp["ks"].threshold == 1.0 and not temp["ks"].drifted
    assert temp["psi"].threshold > 9 and not temp["psi"].drifted
    # The Wasserstein distance (in reference standard deviations) grows with how far July is.
    assert temp["wasserstein"].drifted and temp["wasserstein"].value > 2 * temp["wasserstein"].threshold


def test_days_of_the_training_window_are_quiet_on_a_within_day_shared_source(
    weather: tuple[Spec, dict[str, Any], WeatherDays, WeatherDays]
) -> None:
    spec, profile, window, _ = weather
    results = _checks(spec, profile, window)
    assert len(results) == 59  # 49 reference days, then the 10 holdout days
    assert [r.dataset_drift for r in results].count(True) == 0
    assert [bool(r.out_of_support) for r in results].count(True) == 0
    assert [r.multivariate_drift for r in results].count(True) == 0
    assert [bool(r.drifted_features) for r in results].count(True) == 0
    out_of_support = [row.value for r in results for row in r.rows if row.test == "out_of_support"]
    assert len(out_of_support) == 59 * 6 and max(out_of_support) == 0.0


def test_july_days_are_flagged_on_a_within_day_shared_source(
    weather: tuple[Spec, dict[str, Any], WeatherDays, WeatherDays]
) -> None:
    spec, profile, _, july = weather
    results = _checks(spec, profile, july)
    assert len(results) == 31
    assert sum(r.dataset_drift or bool(r.out_of_support) for r in results) == 31
    assert all(r.drifted_features == ["temp", "humidity"] for r in results)
    assert all([e.feature for e in r.out_of_support] == ["temp", "humidity"] for r in results)
    # 28 with the multivariate threshold at the widest training day, 27 with `unbounded_margin` 1.25 (which
    # keeps the holdout days of tests/integration/test_weather_source.py quiet): every day stays out of support.
    assert sum(r.multivariate_drift for r in results) == 27
    assert sum(r.dataset_drift for r in results) == 27  # 2 of 6 features is under drift_share 0.5: multivariate
    entry = results[0].out_of_support[0]
    assert entry.share == 1.0 and entry.direction == "above" and entry.value == profile["features"]["temp"]["max"]
    assert out_of_support_text(entry) == f"temp: 100% of rows above the training maximum {entry.value:.4g}"


def test_the_new_statistics_raise_no_alarm_on_independent_or_clustered_days(
    spec: Spec, profile: dict[str, Any], clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, scores, days, clustered_profile = clustered
    flags = {"wasserstein": 0, "out_of_support": 0, "multivariate": 0}
    checked = {"wasserstein": 0, "out_of_support": 0, "multivariate": 0}
    results = [check_drift(spec, clustered_profile, frame.loc[days == day].reset_index(drop=True),
                           scores[days == day]) for day in np.unique(days)]
    results += [check_drift(spec, profile, *make_frame(2000, seed=2000 + day)) for day in range(30)]
    for result in results:
        for row in result.rows:
            if row.test in flags:
                flags[row.test] += row.drifted
                checked[row.test] += 1
    assert checked == {"wasserstein": 60 * 9, "out_of_support": 60 * 11, "multivariate": 60}
    assert flags == {"wasserstein": 0, "out_of_support": 0, "multivariate": 0}

"""Thresholds (`ml_batch.monitoring.thresholds`): calibrated on the reference's own days, never below the
fixed ones, fixed without enough days."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.inputs import SCORE
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.thresholds import feature_thresholds
from ml_batch.spec import Spec
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

"""Out of support (`ml_batch.monitoring.support`): the share of a day's rows outside the training window's
values, never on a day of the window, with the bound crossed in words."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import check_drift, out_of_support_entries
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.support import OutOfSupport, out_of_support_text, support_entry
from ml_batch.spec import Spec
from tests.unit.monitoring.data import make_frame, rows_of


def test_no_day_of_the_reference_is_out_of_support(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, scores, days, profile = clustered
    shares = []
    for day in np.unique(days):
        result = check_drift(spec, profile, frame.loc[days == day].reset_index(drop=True), scores[days == day])
        assert result.out_of_support == ()
        shares += [row.value for row in result.rows if row.test == "out_of_support"]
    assert len(shares) == 30 * len(spec.features) and max(shares) == 0.0


def test_a_feature_entirely_above_the_training_range_is_out_of_support(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=31)
    top = profile["features"]["age"]["support"]["high"]
    frame["age"] = top + 1 + np.arange(len(frame)) % 5
    result = check_drift(spec, profile, frame, scores)
    row = rows_of(result, "age")["out_of_support"]
    assert row.value == 1.0 and row.drifted and row.threshold == spec.drift.out_of_support_share
    assert row.detail["above_share"] == 1.0 and row.detail["below_share"] == 0.0
    assert top == profile["features"]["age"]["max"] == 89.0
    assert result.out_of_support == (OutOfSupport("age", 1.0, "above", "above the training maximum 89", 89.0),)
    assert "age" in result.drifted_features
    assert out_of_support_text(result.out_of_support[0]) == "age: 100% of rows above the training maximum 89"
    # The stored form carries the entries, and the entries come back from the rows alone.
    stored = json.loads(json.dumps(result.to_dict()))
    assert stored["out_of_support"] == [{"feature": "age", "share": 1.0, "direction": "above",
                                         "bound": "above the training maximum 89", "value": 89.0,
                                         "categories": []}]
    assert out_of_support_entries(result.rows) == result.out_of_support


def test_a_share_under_the_threshold_is_reported_not_flagged(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=32)
    low = profile["features"]["utilization"]["support"]["low"]
    frame.loc[:199, "utilization"] = low - 0.5  # 10% of the rows (a few of them null)
    row = rows_of(check_drift(spec, profile, frame, scores), "utilization")["out_of_support"]
    present = frame["utilization"].notna()
    assert row.value == pytest.approx((frame.loc[:199, "utilization"].notna()).sum() / present.sum())
    assert not row.drifted and row.detail["direction"] == "below"
    assert row.detail["bound"] == f"below the training minimum {low:.4g}"


def test_values_on_both_sides_name_the_range(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(1000, seed=33)
    frame["age"] = np.where(np.arange(1000) % 2 == 0, 10.0, 130.0)
    (entry,) = check_drift(spec, profile, frame, scores).out_of_support
    assert entry.share == 1.0 and entry.bound == "outside the training range [18, 89]"


def test_categories_never_seen_in_training_are_out_of_support(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(1000, seed=34)
    frame.loc[:599, "channel"] = np.where(np.arange(600) % 3 == 0, "kiosk", "crypto_app")
    result = check_drift(spec, profile, frame, scores)
    (entry,) = result.out_of_support
    present = frame["channel"].notna().sum()
    assert entry.feature == "channel" and entry.direction == "unseen" and entry.value is None
    assert entry.share == pytest.approx(600 / present)
    assert entry.categories == ("crypto_app", "kiosk")
    assert entry.bound == "categories never seen in training: 'crypto_app', 'kiosk'"
    assert out_of_support_text(entry).startswith("channel: 6")
    assert out_of_support_text(entry).endswith("% of rows in categories never seen in training: 'crypto_app', 'kiosk'")


def test_the_holdout_widens_the_support(spec: Spec) -> None:
    frame, scores = make_frame(2000, seed=35)
    holdout, _ = make_frame(500, seed=36)
    holdout["age"] = 120.0
    holdout["channel"] = "kiosk"
    profile = build_profile(spec, frame, scores, support_frame=holdout)
    assert profile["features"]["age"]["support"]["high"] == 120.0
    assert profile["features"]["age"]["max"] < 120.0  # the distribution entries stay the training rows'
    assert "kiosk" in profile["features"]["channel"]["support"]["categories"]
    day, day_scores = make_frame(500, seed=37)
    day["age"], day["channel"] = 110.0, "kiosk"
    assert check_drift(spec, profile, day, day_scores).out_of_support == ()


def test_a_quantile_band_narrows_the_support(spec: Spec) -> None:
    banded = spec.model_copy(update={"drift": spec.drift.model_copy(update={"support_quantiles": (0.05, 0.95)})})
    frame, scores = make_frame(20_000, seed=38)
    profile = build_profile(banded, frame, scores)
    support = profile["features"]["age"]["support"]
    assert support["quantiles"] == [0.05, 0.95]
    assert support["high"] == pytest.approx(np.quantile(frame["age"], 0.95))
    day, day_scores = make_frame(2000, seed=39)
    day["age"] = support["high"] + 1
    (entry,) = check_drift(banded, profile, day, day_scores).out_of_support
    assert entry.bound == f"above the training 0.95 quantile {support['high']:.4g}"


def test_more_categories_than_the_profile_keeps_leave_the_feature_unchecked(spec: Spec) -> None:
    frame, scores = make_frame(2000, seed=40)
    profile = build_profile(spec, frame, scores, max_categories=3)
    assert profile["features"]["purpose"]["support"] == {"categories": [], "complete": False}
    day, day_scores = make_frame(500, seed=41)
    day["purpose"] = "brand_new"
    result = check_drift(spec, profile, day, day_scores)
    assert "out_of_support" not in rows_of(result, "purpose")
    assert any("out of support not checked for home_ownership, purpose" in note for note in result.notes)


def test_support_entry_rejects_nothing_and_skips_nulls() -> None:
    assert support_entry(np.array([np.nan, 2.0, -1.0, np.inf]), (0.0, 1.0), 10) == {
        "quantiles": [0.0, 1.0], "low": -1.0, "high": 2.0}
    assert support_entry(np.array([np.nan]), (0.0, 1.0), 10) == {"quantiles": [0.0, 1.0]}
    assert support_entry(["b", "a", "__missing__", "a"], (0.0, 1.0), 10) == {"categories": ["a", "b"],
                                                                              "complete": True}


def test_support_quantiles_must_be_a_band_around_the_median(spec: Spec) -> None:
    with pytest.raises(ValueError, match=r"support_quantiles \[0.6, 0.9\]: expected \[low, high\] with 0 <= low"):
        type(spec.drift)(support_quantiles=(0.6, 0.9))

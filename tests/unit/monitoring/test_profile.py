"""Reference profiles (`ml_batch.monitoring.profile`): complete, bounded, reproducible, calibrated per day."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.inputs import MISSING, DriftInputError
from ml_batch.monitoring.multivariate import MULTIVARIATE
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.statistics import psi
from ml_batch.spec import Spec
from tests.unit.monitoring.data import CHANNEL, clustered_days, rows_of


def test_profile_is_json_serialisable_and_complete(spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, scores = reference
    profile = build_profile(spec, frame, scores)
    text = json.dumps(profile, allow_nan=False)  # strict JSON: no NaN, no Infinity
    assert json.loads(text) == profile
    assert profile["profile_version"] == 1
    assert set(profile["features"]) == set(spec.feature_names)
    income = profile["features"]["income"]
    assert income["type"] == "numeric"
    assert len(income["edges"]) == spec.drift.bins - 1
    assert len(income["shares"]) == len(income["edges"]) + 1
    assert sum(income["shares"]) + income["null_share"] == pytest.approx(1.0)
    assert income["null_share"] == pytest.approx(0.02, abs=0.005)
    assert income["count"] == len(frame)
    # A discrete feature: tied quantiles collapse into fewer edges.
    late = profile["features"]["late_payments_90d"]
    assert len(late["edges"]) < spec.drift.bins - 1
    assert late["edges"] == sorted(set(late["edges"]))
    channel = profile["features"]["channel"]
    assert channel["type"] == "categorical"
    assert set(channel["frequencies"]) == {*CHANNEL[0], MISSING}
    assert channel["frequencies"][MISSING] == pytest.approx(0.03, abs=0.005)
    assert sum(channel["frequencies"].values()) == pytest.approx(1.0)
    assert profile["score"]["type"] == "numeric" and len(profile["score"]["sample"]) == 5000


def test_profile_is_bounded_and_reproducible_for_a_million_rows(spec: Spec) -> None:
    rows = 1_000_000
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in ("a", "b")})
    small = Spec.model_validate(
        {
            **spec.model_dump(mode="json"),
            "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}],
        }
    )
    profile = build_profile(small, frame, rng.random(rows), sample_size=5000, seed=4)
    for entry in (*profile["features"].values(), profile["score"]):
        assert len(entry["sample"]) == 5000
    assert len(json.dumps(profile)) < 500_000
    again = build_profile(small, frame, rng.random(rows), sample_size=5000, seed=4)
    assert again["features"] == profile["features"]


def test_profile_of_an_all_null_feature_names_it(spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, scores = reference
    broken = frame.assign(debt_ratio=np.nan)
    with pytest.raises(DriftInputError, match="'debt_ratio' has no non-null value"):
        build_profile(spec, broken, scores)


def test_high_cardinality_categories_are_pooled(spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]) -> None:
    frame, scores = reference
    ids = frame.assign(channel=[f"c{i % 3000}" for i in range(len(frame))])
    profile = build_profile(spec, ids, scores, max_categories=100)
    frequencies = profile["features"]["channel"]["frequencies"]
    assert len(frequencies) == 102  # 100 kept + __other__ + __missing__
    assert profile["features"]["channel"]["pooled_categories"] == 2900
    # A pooled category is not reported as unseen.
    result = check_drift(spec, profile, ids.iloc[:2000], scores[:2000])
    assert rows_of(result, "channel")["psi"].detail["unseen_total"] == 0


def test_profile_records_each_day_against_the_rest_of_the_reference(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, _, days, profile = clustered
    calibration = profile["calibration"]
    assert calibration["days"][0] == "2026-03-01" and len(calibration["days"]) == 30
    assert set(calibration["values"]) == {*spec.feature_names, MULTIVARIATE}
    assert all(len(values) == 30 for values in calibration["values"]["age"].values())
    assert set(calibration["values"]["purpose"]) == {"psi", "js"} and len(calibration["score"]["ks"]) == 30
    # Day 3's age PSI is computed on the profile's bins with day 3 left out of the reference.
    edges = np.asarray(profile["features"]["age"]["edges"])
    on_day = days == days[3 * 800]
    bins = np.searchsorted(edges, frame["age"].to_numpy(), side="left")
    rest = np.bincount(bins[~on_day], minlength=edges.size + 1) / (~on_day).sum()
    day = np.bincount(bins[on_day], minlength=edges.size + 1) / on_day.sum()
    expected = psi([*rest, 0.0], [*day, 0.0])
    assert calibration["values"]["age"]["psi"][3] == pytest.approx(expected, rel=1e-9)


def test_build_profile_rejects_days_that_do_not_match_the_rows(spec: Spec) -> None:
    frame, scores, days = clustered_days(8, 100, seed=5)
    with pytest.raises(DriftInputError, match="days has 799 entries but there are 800 rows"):
        build_profile(spec, frame, scores, days=days[:-1])
    broken = days.astype(object)
    broken[3] = "not a day"
    with pytest.raises(DriftInputError, match="days holds values that are not days: \\['not a day'\\]"):
        build_profile(spec, frame, scores, days=broken)


def test_build_profile_rejects_importance_of_other_features(
    spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, scores = reference
    with pytest.raises(DriftInputError, match="importance must name exactly the spec's features"):
        build_profile(spec, frame.iloc[:100], scores[:100], importance={"income": 1.0})


def test_importance_is_stored_in_spec_order_with_negative_values_as_zero(
    spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, scores = reference
    importance = {name: -0.5 if name == "age" else 2.0 for name in reversed(spec.feature_names)}
    profile = build_profile(spec, frame.iloc[:500], scores[:500], importance=importance)
    assert list(profile["importance"]) == spec.feature_names
    assert profile["importance"]["age"] == 0.0 and profile["importance"]["income"] == 2.0

"""Drift statistics, reference profiles and the drift decision, on the demo spec (no database)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ml_batch.monitoring.drift import (
    MISSING,
    SCORE,
    UNSEEN,
    DriftInputError,
    DriftResult,
    build_profile,
    calibrated_threshold,
    check_drift,
    chi_square,
    js_distance,
    ks,
    psi,
    weighted_share,
)
from ml_batch.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "include" / "models" / "credit_default.yaml"

HOME = (["RENT", "OWN", "MORTGAGE", "OTHER"], [0.40, 0.15, 0.40, 0.05])
PURPOSE = (
    ["debt_consolidation", "credit_card", "home_improvement", "car", "medical", "other"],
    [0.35, 0.25, 0.15, 0.12, 0.08, 0.05],
)
CHANNEL = (["web", "branch", "partner", "phone"], [0.55, 0.2, 0.15, 0.1])


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec(DEMO)


def make_frame(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows drawn from one fixed distribution per demo feature (normal, lognormal, counts, categories), and scores."""
    rng = np.random.default_rng(seed)

    def with_nulls(values: np.ndarray, share: float) -> np.ndarray:
        values = values.astype(np.float64)
        values[rng.random(rows) < share] = np.nan
        return values

    channel = rng.choice(CHANNEL[0], size=rows, p=CHANNEL[1]).astype(object)
    channel[rng.random(rows) < 0.03] = None
    frame = pd.DataFrame(
        {
            "income": with_nulls(rng.lognormal(10.5, 0.6, rows), 0.02),
            "age": np.clip(np.round(rng.normal(42, 12, rows)), 18, 100),
            "debt_ratio": with_nulls(rng.lognormal(-1.0, 0.7, rows), 0.01),
            "utilization": with_nulls(rng.beta(2, 5, rows) * 1.2, 0.01),
            "credit_lines": rng.poisson(6, rows),
            "late_payments_90d": rng.poisson(0.3, rows),
            "loan_amount": np.clip(rng.lognormal(9, 0.8, rows), 100, 200_000),
            "employment_years": with_nulls(rng.exponential(6, rows), 0.05),
            "home_ownership": rng.choice(HOME[0], size=rows, p=HOME[1]),
            "purpose": rng.choice(PURPOSE[0], size=rows, p=PURPOSE[1]),
            "channel": channel,
        }
    )
    return frame, rng.beta(2, 8, rows)


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(50_000, seed=0)


@pytest.fixture(scope="module")
def profile(spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]) -> dict[str, Any]:
    frame, scores = reference
    # Through JSON, as it comes back from the registry.
    return json.loads(json.dumps(build_profile(spec, frame, scores)))


def rows_of(result: DriftResult, feature: str) -> dict[str, Any]:
    return {row.test: row for row in result.feature_rows(feature)}


# ------------------------------------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([0.1, 0.4, 0.7, 1.3, 2.0], [0.2, 0.5, 0.9, 3.1]),
        ([1, 1, 2, 2, 2, 3], [1, 2, 3, 3, 3, 3, 4]),  # ties
        (list(range(30)), [x + 0.5 for x in range(10, 40)]),
    ],
)
def test_ks_equals_scipy_on_small_fixtures(a: list[float], b: list[float]) -> None:
    expected = stats.ks_2samp(a, b)
    d, p_value = ks(a, b)
    assert d == pytest.approx(expected.statistic, abs=1e-15)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-12)


@pytest.mark.parametrize("discrete", [False, True])
def test_ks_equals_scipy_on_large_samples_with_the_fast_path(discrete: bool) -> None:
    rng = np.random.default_rng(3)
    if discrete:
        ref, cur = rng.poisson(3, 5000).astype(float), rng.poisson(3.2, 60_000).astype(float)
    else:
        ref, cur = rng.normal(0, 1, 5000), rng.normal(0.05, 1, 60_000)
    expected = stats.ks_2samp(ref, cur)
    d, p_value = ks(ref, cur)
    assert d == pytest.approx(expected.statistic, abs=1e-15)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_drops_nans_and_rejects_an_empty_side() -> None:
    assert ks([1.0, 2.0, np.nan, 3.0], [2.0, np.nan, 4.0]) == ks([1.0, 2.0, 3.0], [2.0, 4.0])
    with pytest.raises(ValueError, match="cur_values has no non-NaN value"):
        ks([1.0, 2.0], [np.nan])


def test_psi_equals_a_hand_computation() -> None:
    # (0.4 - 0.5) ln(0.4/0.5) + (0.4 - 0.3) ln(0.4/0.3) + (0.2 - 0.2) ln(1)
    # = (-0.1)(-0.2231436) + (0.1)(0.2876821) + 0 = 0.0223144 + 0.0287682 = 0.0510826
    assert psi([0.5, 0.3, 0.2], [0.4, 0.4, 0.2]) == pytest.approx(0.0510826, abs=1e-7)
    # Counts work as well as shares (both are normalised).
    assert psi([50, 30, 20], [40, 40, 20]) == pytest.approx(0.0510826, abs=1e-7)
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_psi_clips_empty_bins_at_eps_and_renormalises() -> None:
    # ref [0.5, 0.5, 0] -> clipped [0.5, 0.5, 0.0001] / 1.0001 = [0.499950, 0.499950, 0.0000999900]
    # cur [0.5, 0.4, 0.1] stays as is.
    # (0.5 - 0.499950) ln(0.5/0.499950)       = 0.0000499950 * 0.0000999950 = 0.0000000050
    # (0.4 - 0.499950) ln(0.4/0.499950)       = -0.0999500 * -0.2230436   = 0.0222932
    # (0.1 - 0.0000999900) ln(0.1/0.0000999900) = 0.0999000 * 6.9078553   = 0.6900947
    # total                                                                 = 0.7123879
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], eps=1e-4) == pytest.approx(0.7123879, abs=1e-6)


def test_psi_rejects_misaligned_or_negative_shares() -> None:
    with pytest.raises(ValueError, match="ref_shares has 2 bins but cur_shares has 3"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="cur_shares must hold finite, non-negative shares"):
        psi([0.5, 0.5], [1.2, -0.2])


def test_js_distance_equals_scipy_base_2() -> None:
    ref, cur = [0.5, 0.3, 0.2, 0.0], [0.3, 0.3, 0.3, 0.1]
    assert js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-12)
    assert js_distance(ref, ref) == pytest.approx(0.0, abs=1e-7)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_chi_square_counts_an_unseen_category() -> None:
    ref = {"a": 0.5, "b": 0.5}
    stat, p_value = chi_square(ref, {"a": 50, "b": 40, "z": 10})
    # The unseen "z" is a cell of its own with expected share 1e-4 (all shares renormalised), not dropped.
    shares = np.array([0.5, 0.5, 1e-4]) / 1.0001
    expected = stats.chisquare([50, 40, 10], shares * 100)
    assert stat == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    assert stat > 9_000  # 10 rows where 0.01 are expected: (10 - 0.01)^2 / 0.01 ~ 9,980
    dropped = stats.chisquare([50, 40], [45, 45]).statistic
    assert stat > 100 * dropped


def test_chi_square_without_unseen_is_the_plain_goodness_of_fit() -> None:
    stat, p_value = chi_square({"a": 0.6, "b": 0.4}, {"a": 55, "b": 45})
    expected = stats.chisquare([55, 45], [60, 40])
    assert (stat, p_value) == pytest.approx((expected.statistic, expected.pvalue))


# ----------------------------------------------------------------------------------------------- profile


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


# ------------------------------------------------------------------------------------------------- check


def test_no_false_alarm_on_30_days_from_the_reference_distribution(spec: Spec, profile: dict[str, Any]) -> None:
    drifted_days: list[tuple[int, list[str]]] = []
    worst: dict[str, float] = {"psi": 0.0, "ks": 0.0, "js": 0.0}
    for day in range(1, 31):
        frame, scores = make_frame(2000, seed=1000 + day)
        result = check_drift(spec, profile, frame, scores)
        assert not result.dataset_drift
        assert not result.score_drift
        if result.drifted_features:
            drifted_days.append((day, result.drifted_features))
        for row in result.rows:
            if row.test in worst and row.value is not None:
                worst[row.test] = max(worst[row.test], row.value)
    assert drifted_days == []
    # Far from the thresholds, not just under them.
    assert worst["psi"] < spec.drift.psi_threshold / 4
    assert worst["ks"] < spec.drift.ks_threshold * 0.75
    assert worst["js"] < spec.drift.js_threshold / 2


@pytest.mark.parametrize("feature", ["age", "income", "utilization"])
def test_a_mean_shift_of_half_a_standard_deviation_drifts(spec: Spec, profile: dict[str, Any], feature: str) -> None:
    frame, scores = make_frame(2000, seed=77)
    frame[feature] = frame[feature] + 0.5 * profile["features"][feature]["std"]
    result = check_drift(spec, profile, frame, scores)
    assert result.drifted_features == [feature]
    ks_row = rows_of(result, feature)["ks"]
    assert ks_row.drifted and ks_row.value >= spec.drift.ks_threshold
    assert not result.dataset_drift  # 1 of 11 features is under the demo's drift_share of 0.3


def test_several_drifted_features_make_dataset_drift(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=78)
    shifted = ["income", "age", "debt_ratio", "loan_amount"]
    for feature in shifted:
        frame[feature] = frame[feature] + profile["features"][feature]["std"]
    result = check_drift(spec, profile, frame, scores)
    assert result.drifted_features == shifted
    assert result.share == pytest.approx(4 / 11)
    assert result.dataset_drift


def test_a_new_category_at_20_percent_drifts_and_is_listed(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=79)
    new = np.random.default_rng(5).random(len(frame)) < 0.2
    frame.loc[new, "channel"] = "crypto_app"
    result = check_drift(spec, profile, frame, scores)
    assert result.drifted_features == ["channel"]
    rows = rows_of(result, "channel")
    assert rows["psi"].drifted and rows["js"].drifted
    assert rows["psi"].detail["unseen"] == {"crypto_app": int(new.sum())}
    assert rows["js"].detail["unseen_total"] == int(new.sum())
    labels, current = rows["psi"].detail["labels"], rows["psi"].detail["current"]
    assert current[labels.index(UNSEEN)] == pytest.approx(new.mean())
    # chi2 reports, never decides.
    assert rows["chi2"].threshold is None and not rows["chi2"].drifted and rows["chi2"].p_value < 1e-10


def test_nulls_jumping_from_1_to_30_percent_drift(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=80)
    nulls = np.random.default_rng(6).random(len(frame)) < 0.3
    frame.loc[nulls, "debt_ratio"] = np.nan
    result = check_drift(spec, profile, frame, scores)
    assert result.drifted_features == ["debt_ratio"]
    rows = rows_of(result, "debt_ratio")
    assert rows["psi"].drifted
    assert not rows["ks"].drifted  # the non-null values did not change: only the null bin shows it
    assert rows["psi"].detail["reference_null_share"] == pytest.approx(0.01, abs=0.003)
    assert rows["psi"].detail["current_null_share"] == pytest.approx(0.3, abs=0.03)
    assert rows["psi"].detail["labels"][-1] == "null"


def test_score_drift_is_reported_apart_from_the_feature_share(spec: Spec, profile: dict[str, Any]) -> None:
    frame, _ = make_frame(2000, seed=81)
    result = check_drift(spec, profile, frame, np.random.default_rng(7).beta(4, 6, len(frame)))
    assert result.score_drift
    assert result.drifted_features == [] and result.share == 0.0 and not result.dataset_drift
    assert {row.test for row in result.feature_rows(SCORE)} == {"psi", "ks"}


def test_decision_is_on_effect_sizes_not_p_values(spec: Spec, profile: dict[str, Any]) -> None:
    # 200,000 rows with a shift of 0.05 sd: KS's p-value is tiny, the effect is not: no drift.
    frame, scores = make_frame(200_000, seed=82)
    frame["age"] = frame["age"] + 0.05 * profile["features"]["age"]["std"]
    result = check_drift(spec, profile, frame, scores)
    ks_row = rows_of(result, "age")["ks"]
    assert ks_row.p_value is not None and ks_row.p_value < 0.01
    assert not ks_row.drifted and result.drifted_features == []


def test_check_drift_ks_matches_scipy_on_the_profile_sample(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(20_000, seed=83)
    result = check_drift(spec, profile, frame, scores)
    values = frame["income"].to_numpy()
    expected = stats.ks_2samp(profile["features"]["income"]["sample"], values[~np.isnan(values)])
    ks_row = rows_of(result, "income")["ks"]
    assert ks_row.value == pytest.approx(expected.statistic, abs=1e-15)
    assert ks_row.p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_on_a_large_batch_uses_a_seeded_subset(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(50_000, seed=84)
    bounded = check_drift(spec, profile, frame, scores, ks_max_values=10_000)
    again = check_drift(spec, profile, frame, scores, ks_max_values=10_000)
    exact = check_drift(spec, profile, frame, scores, ks_max_values=None)
    for feature in ("income", "age"):
        row, same, full = rows_of(bounded, feature)["ks"], rows_of(again, feature)["ks"], rows_of(exact, feature)["ks"]
        assert row.detail["current_values_compared"] == 10_000
        assert row.value == same.value  # deterministic: a re-run gives the same result
        assert row.value == pytest.approx(full.value, abs=0.02)
        # PSI always uses every row.
        assert rows_of(bounded, feature)["psi"].value == rows_of(exact, feature)["psi"].value


def test_empty_current_frame_names_the_feature(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(10, seed=85)
    with pytest.raises(ValueError, match="current frame has no rows: cannot check drift of feature 'income'"):
        check_drift(spec, profile, frame.iloc[:0], scores[:0])


def test_missing_column_and_all_null_column(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(500, seed=86)
    with pytest.raises(DriftInputError, match="no column for feature 'purpose'"):
        check_drift(spec, profile, frame.drop(columns="purpose"), scores)
    result = check_drift(spec, profile, frame.assign(utilization=np.nan), scores)
    rows = rows_of(result, "utilization")
    assert rows["ks"].value is None and rows["ks"].detail["skipped"]
    assert rows["psi"].drifted and "utilization" in result.drifted_features


def test_profile_that_does_not_match_the_spec_is_refused(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(100, seed=87)
    with pytest.raises(DriftInputError, match="profile_version 2 is not supported"):
        check_drift(spec, {**profile, "profile_version": 2}, frame, scores)
    features = {k: v for k, v in profile["features"].items() if k != "age"}
    with pytest.raises(DriftInputError, match="no entry for feature 'age'"):
        check_drift(spec, {**profile, "features": features}, frame, scores)


def test_result_is_json_serialisable(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(1000, seed=88)
    result = check_drift(spec, profile, frame.assign(utilization=np.nan), scores)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["n_rows"] == 1000 and len(data["rows"]) == len(result.rows)
    assert all(row["value"] is None or math.isfinite(row["value"]) for row in data["rows"])


def test_an_integer_category_is_one_category_in_the_profile_the_check_and_the_pipeline() -> None:
    """Training reads grade as float64 (it has NULLs), a later day as int64 or NUMERIC: no unseen category."""
    from decimal import Decimal

    from ml_batch.categories import category_frame
    from tests.integration.helpers import toy_spec

    spec = toy_spec("s", features=[{"name": "x1", "type": "numeric"}, {"name": "grade", "type": "categorical"}])
    rng = np.random.default_rng(0)
    grade = rng.integers(0, 4, 1000).astype(np.float64)
    grade[::10] = np.nan
    reference = pd.DataFrame({"x1": rng.normal(size=1000), "grade": grade})
    profile = build_profile(spec, reference, rng.random(1000))
    assert set(profile["features"]["grade"]["frequencies"]) == {"0", "1", "2", "3", MISSING}
    assert set(profile["features"]["grade"]["frequencies"]) == set(category_frame(reference[["grade"]])["grade"])
    for day in (pd.Series(rng.integers(0, 4, 500), dtype="int64"),
                pd.Series([Decimal(int(g)) for g in rng.integers(0, 4, 500)], dtype=object)):
        result = check_drift(spec, profile, pd.DataFrame({"x1": rng.normal(size=500), "grade": day}),
                             rng.random(500))
        assert rows_of(result, "grade")["psi"].detail["unseen_total"] == 0


# ------------------------------------------------------------------------------------------- calibration


def clustered_days(days: int, rows_per_day: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Days whose rows share a day-level effect (weather-like, calendar-like): each day is a narrow cluster."""
    frame, scores = make_frame(days * rows_per_day, seed)
    rng = np.random.default_rng(seed + 100)
    day_index = np.repeat(np.arange(days), rows_per_day)
    frame["age"] = np.clip(frame["age"] + rng.normal(0, 6, days)[day_index], 18, 100)
    frame["loan_amount"] = frame["loan_amount"] * rng.lognormal(0, 0.4, days)[day_index]
    frame["employment_years"] = frame["employment_years"] + rng.normal(0, 3, days)[day_index]
    frame["credit_lines"] = frame["credit_lines"] + rng.poisson(2, days)[day_index]
    dominant = rng.choice(PURPOSE[0], size=days)[day_index]
    frame["purpose"] = np.where(rng.random(len(frame)) < 0.6, dominant, frame["purpose"])
    day_values = (pd.Timestamp("2026-03-01") + pd.to_timedelta(day_index, unit="D")).to_numpy()
    return frame, scores, day_values


@pytest.fixture(scope="module")
def clustered(spec: Spec) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]:
    frame, scores, days = clustered_days(30, 800, seed=11)
    profile = json.loads(json.dumps(build_profile(spec, frame, scores, days=days, score_days=days)))
    return frame, scores, days, profile


def test_profile_records_each_day_against_the_rest_of_the_reference(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, _, days, profile = clustered
    calibration = profile["calibration"]
    assert calibration["days"][0] == "2026-03-01" and len(calibration["days"]) == 30
    assert set(calibration["values"]) == set(spec.feature_names)
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


def test_build_profile_rejects_days_that_do_not_match_the_rows(spec: Spec) -> None:
    frame, scores, days = clustered_days(8, 100, seed=5)
    with pytest.raises(DriftInputError, match="days has 799 entries but there are 800 rows"):
        build_profile(spec, frame, scores, days=days[:-1])
    broken = days.astype(object)
    broken[3] = "not a day"
    with pytest.raises(DriftInputError, match="days holds values that are not days: \\['not a day'\\]"):
        build_profile(spec, frame, scores, days=broken)


def test_calibrated_threshold_is_a_quantile_times_the_margin() -> None:
    assert calibrated_threshold([0.1, 0.3, 0.2], 1.0, 1.0) == pytest.approx(0.3)
    assert calibrated_threshold([0.0, 1.0], 0.5, 2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no calibration value"):
        calibrated_threshold([], 1.0, 1.0)


def test_alert_after_needs_days_within_of() -> None:
    from ml_batch.spec import AlertAfterSpec

    with pytest.raises(ValueError, match=r"days \(4\) must be at most of \(3\)"):
        AlertAfterSpec(days=4, of=3)


# ---------------------------------------------------------------------------------- importance weighting


def test_weighted_share_counts_importance_of_the_drifted_features() -> None:
    importance = {"a": 3.0, "b": 1.0, "c": 0.0, "d": -0.2}
    assert weighted_share(importance, ["a"]) == pytest.approx(0.75)
    assert weighted_share(importance, ["c", "d"]) == 0.0  # ignored (or harmful-to-shuffle) features add nothing
    assert weighted_share(None, ["a"]) is None
    assert weighted_share({"a": 0.0}, ["a"]) is None


def test_a_feature_the_model_ignores_cannot_make_dataset_drift_alone(
    spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, scores = reference
    importance = {name: 0.0 if name == "income" else 1.0 for name in spec.feature_names}
    profile = json.loads(json.dumps(build_profile(spec, frame, scores, importance=importance)))
    current, current_scores = make_frame(5000, seed=21)
    current["income"] = current["income"] * 3
    low_share = spec.drift.model_copy(update={"drift_share": 0.05})
    by_count = check_drift(spec.model_copy(update={"drift": low_share}), profile, current, current_scores)
    by_importance = check_drift(
        spec.model_copy(update={"drift": low_share.model_copy(update={"share_basis": "importance"})}),
        profile, current, current_scores)
    assert by_count.drifted_features == by_importance.drifted_features == ["income"]
    assert by_count.dataset_drift and by_count.share_basis == "count"
    assert not by_importance.dataset_drift and by_importance.share_basis == "importance"
    assert by_importance.weighted_share == 0.0 and by_count.weighted_share == 0.0
    # The same change in a feature the model leans on is dataset drift on either basis.
    current, current_scores = make_frame(5000, seed=21)
    current["utilization"] = current["utilization"] + 0.5
    weighted = check_drift(
        spec.model_copy(update={"drift": low_share.model_copy(update={"share_basis": "importance"})}),
        profile, current, current_scores)
    assert weighted.drifted_features == ["utilization"] and weighted.weighted_share == pytest.approx(0.1)
    assert weighted.dataset_drift


def test_build_profile_rejects_importance_of_other_features(
    spec: Spec, reference: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame, scores = reference
    with pytest.raises(DriftInputError, match="importance must name exactly the spec's features"):
        build_profile(spec, frame.iloc[:100], scores[:100], importance={"income": 1.0})


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

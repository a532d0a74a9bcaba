"""The drift check (`ml_batch.monitoring.drift`) on the demo spec: no false alarm on the reference's
distribution, drift on shifts, decisions on effect sizes, typed errors."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml_batch.monitoring.drift import check_drift, weighted_share
from ml_batch.monitoring.inputs import MISSING, SCORE, UNSEEN, DriftInputError
from ml_batch.monitoring.profile import build_profile
from ml_batch.monitoring.rows import NO_VALUES, NULL_SHARE_RISE
from ml_batch.spec import Spec
from tests.unit.monitoring.data import make_frame, rows_of


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
    assert {row.test for row in result.feature_rows(SCORE)} == {"psi", "ks", "wasserstein"}


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
    assert set(rows) == {"psi", "null_share"}  # KS has nothing to compare: not computed
    assert rows["psi"].drifted and "utilization" in result.drifted_features


def test_profile_that_does_not_match_the_spec_is_refused(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(100, seed=87)
    with pytest.raises(DriftInputError, match="profile_version 2 is not supported"):
        check_drift(spec, {**profile, "profile_version": 2}, frame, scores)
    features = {k: v for k, v in profile["features"].items() if k != "age"}
    with pytest.raises(DriftInputError, match="no entry for feature 'age'"):
        check_drift(spec, {**profile, "features": features}, frame, scores)
    with pytest.raises(DriftInputError, match="profile has no 'score' entry"):
        check_drift(spec, {k: v for k, v in profile.items() if k != "score"}, frame, scores)


def test_result_is_json_serialisable(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(1000, seed=88)
    result = check_drift(spec, profile, frame.assign(utilization=np.nan), scores)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["n_rows"] == 1000 and len(data["rows"]) == len(result.rows)
    assert all(row["value"] is None or math.isfinite(row["value"]) for row in data["rows"])


def test_an_integer_category_is_one_category_in_the_profile_the_check_and_the_pipeline() -> None:
    """Training reads grade as float64 (it has NULLs), a later day as int64 or NUMERIC: no unseen category."""
    from ml_batch.categories import category_frame
    from ml_batch.monitoring.inputs import MISSING
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


def test_importance_basis_without_importance_decides_on_the_count_share(
    spec: Spec, profile: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    by_importance = spec.model_copy(update={"drift": spec.drift.model_copy(update={"share_basis": "importance"})})
    frame, scores = make_frame(2000, seed=78)
    for feature in ("income", "age", "debt_ratio", "loan_amount"):
        frame[feature] = frame[feature] + profile["features"][feature]["std"]
    result = check_drift(by_importance, profile, frame, scores)  # the profile holds no importance
    assert result.share_basis == "count" and result.weighted_share is None and result.dataset_drift
    assert "share_basis is importance but the profile has no usable importance" in caplog.text


def test_a_numeric_feature_with_no_values_says_so_and_counts_as_drifted(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(500, seed=90)
    result = check_drift(spec, profile, frame.assign(income=np.nan), scores)
    rows = rows_of(result, "income")
    assert set(rows) == {"psi", "null_share"}
    assert all(row.detail["status"] == NO_VALUES for row in rows.values())
    assert all(row.value is not None and math.isfinite(row.value) for row in result.rows)
    assert rows["null_share"].value == 1.0 and rows["null_share"].drifted
    assert rows["null_share"].detail["reference_null_share"] == pytest.approx(0.02, abs=0.003)
    assert result.no_values == ["income"] and result.drifted_features == ["income"]
    assert not any(row.detail.get("status") for row in result.rows if row.feature != "income")


def test_a_categorical_feature_with_no_values_says_so_and_counts_as_drifted(
    spec: Spec, profile: dict[str, Any]
) -> None:
    frame, scores = make_frame(500, seed=91)
    result = check_drift(spec, profile, frame.assign(channel=None), scores)
    rows = rows_of(result, "channel")
    assert set(rows) == {"psi", "js", "chi2", "null_share"}
    assert all(row.detail["status"] == NO_VALUES for row in rows.values())
    assert rows["null_share"].value == 1.0
    assert rows["null_share"].detail["reference_null_share"] == pytest.approx(0.03, abs=0.003)
    assert result.no_values == ["channel"] and result.drifted_features == ["channel"]


def test_a_feature_with_no_values_counts_as_drifted_whatever_its_effect_sizes_say(
    spec: Spec, profile: dict[str, Any]
) -> None:
    # Thresholds too wide for any PSI: only the rule "a feature that vanished drifted" can flag it.
    wide = spec.model_copy(update={"drift": spec.drift.model_copy(update={"psi_threshold": 1e6})})
    frame, scores = make_frame(500, seed=92)
    result = check_drift(wide, profile, frame.assign(debt_ratio=np.nan), scores)
    assert not rows_of(result, "debt_ratio")["psi"].drifted
    assert result.drifted_features == ["debt_ratio"]


def test_a_feature_null_in_the_reference_and_the_day_is_not_drifted(spec: Spec) -> None:
    frame, scores = make_frame(2000, seed=93)
    reference = build_profile(spec, frame.assign(channel=None), scores)
    day, day_scores = make_frame(500, seed=94)
    result = check_drift(spec, reference, day.assign(channel=None), day_scores)
    assert result.no_values == ["channel"] and "channel" not in result.drifted_features
    assert not rows_of(result, "channel")["null_share"].drifted


def test_a_constant_numeric_feature_is_checked_and_says_it_became_constant(
    spec: Spec, profile: dict[str, Any]
) -> None:
    frame, scores = make_frame(500, seed=95)
    result = check_drift(spec, profile, frame.assign(loan_amount=5000.0), scores)
    rows = rows_of(result, "loan_amount")
    assert set(rows) == {"psi", "ks", "wasserstein", "out_of_support", "null_share"} and rows["ks"].drifted
    assert rows["out_of_support"].value == 0.0  # 5000 lies within the training range
    assert rows["null_share"].detail["became_constant"] and rows["null_share"].detail["constant"]
    assert not rows["null_share"].detail["reference_constant"] and not rows["null_share"].drifted
    assert "status" not in rows["psi"].detail and result.no_values == []
    assert not rows_of(result, "age")["null_share"].detail["became_constant"]


def test_every_feature_reports_its_null_share_next_to_the_reference_one(spec: Spec, profile: dict[str, Any]) -> None:
    frame, scores = make_frame(2000, seed=96)
    result = check_drift(spec, profile, frame, scores)
    shares = {row.feature: row for row in result.rows if row.test == "null_share"}
    assert list(shares) == spec.feature_names  # and none for the scores
    employment = shares["employment_years"]
    assert employment.value == pytest.approx(frame["employment_years"].isna().mean())
    assert employment.detail["reference_null_share"] == profile["features"]["employment_years"]["null_share"]
    assert employment.threshold == pytest.approx(employment.detail["reference_null_share"] + NULL_SHARE_RISE)
    assert shares["channel"].detail["reference_null_share"] == profile["features"]["channel"]["frequencies"][MISSING]
    assert not any(row.drifted for row in shares.values())


def test_a_null_share_rise_is_flagged_but_does_not_decide_the_feature(spec: Spec, profile: dict[str, Any]) -> None:
    # employment_years: 5% nulls in the reference, 17% on the day. The rise (0.12) is flagged; PSI's null bin
    # (~0.15) stays under its threshold, and the feature's verdict is PSI's and KS's.
    frame, scores = make_frame(4000, seed=97)
    extra = np.random.default_rng(8).random(len(frame)) < 0.125
    frame.loc[extra, "employment_years"] = np.nan
    result = check_drift(spec, profile, frame, scores)
    rows = rows_of(result, "employment_years")
    assert rows["null_share"].drifted and rows["null_share"].detail["rise"] > NULL_SHARE_RISE
    assert not rows["psi"].drifted and not rows["ks"].drifted
    assert "employment_years" not in result.drifted_features


def _as_stored_before_issue_21(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile as versions registered before out of support, Wasserstein and multivariate drift stored it."""
    old = json.loads(json.dumps(profile))
    old.pop("multivariate")
    for entry in old["features"].values():
        entry.pop("support")
    if "calibration" in old:
        old["calibration"]["values"].pop("__multivariate__")
        for by_test in [*old["calibration"]["values"].values(), old["calibration"].get("score", {})]:
            by_test.pop("wasserstein", None)
    return old


def test_a_calibrated_profile_stored_before_the_new_statistics_is_checked_without_them(
    spec: Spec, clustered: tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any]]
) -> None:
    frame, scores, days, profile = clustered
    old = _as_stored_before_issue_21(profile)
    on_day = days == days[0]
    result = check_drift(spec, old, frame.loc[on_day].reset_index(drop=True), scores[on_day])
    assert {row.test for row in result.rows} == {"psi", "ks", "js", "chi2", "null_share"}
    assert result.out_of_support == () and not result.multivariate_drift and not result.dataset_drift
    assert result.notes == [
        "out of support not checked: the profile was built before it (retrain to get it)",
        "wasserstein not computed: the profile's calibration was built before it (retrain to get it)",
        "multivariate drift not computed: the profile was built before it (retrain to get it)",
    ]
    # The same day against the new profile has every row, and no note.
    new = check_drift(spec, profile, frame.loc[on_day].reset_index(drop=True), scores[on_day])
    assert {"wasserstein", "out_of_support", "multivariate"} <= {row.test for row in new.rows}
    assert new.notes == []


def test_an_uncalibrated_profile_stored_before_the_new_statistics_gets_the_fixed_wasserstein(
    spec: Spec, profile: dict[str, Any]
) -> None:
    # Without calibration nothing is held against its own days: the fixed thresholds apply, as for KS.
    result = check_drift(spec, _as_stored_before_issue_21(profile), *make_frame(2000, seed=60))
    assert rows_of(result, "age")["wasserstein"].threshold == spec.drift.wasserstein_threshold
    assert "out_of_support" not in rows_of(result, "age") and result.feature_rows("__multivariate__") == []
    assert len(result.notes) == 2 and not result.dataset_drift

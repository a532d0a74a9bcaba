"""Multivariate drift (`ml_batch.monitoring.multivariate`): the PCA reconstruction error of a day over the
reference's, calibrated leave one day out, seeing a broken correlation that no single feature shows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.multivariate import (
    MULTIVARIATE,
    NOISE_SIGMAS,
    multivariate_entry,
    noise_floor,
    per_day_ratios,
    standardised,
)
from ml_batch.monitoring.profile import build_profile
from ml_batch.spec import FeatureSpec, Spec
from tests.unit.monitoring.data import rows_of

NAMES = ["a", "b", "c", "d"]


def _correlated(rows: int, seed: int) -> pd.DataFrame:
    """a and b move together, c and d too; the pairs are independent."""
    rng = np.random.default_rng(seed)
    first, second = rng.normal(0, 1, rows), rng.normal(5, 2, rows)
    return pd.DataFrame({"a": first, "b": first + rng.normal(0, 0.2, rows),
                         "c": second, "d": 3 * second + rng.normal(0, 0.5, rows)})


@pytest.fixture(scope="module")
def four(spec: Spec) -> Spec:
    return spec.model_copy(update={"features": [FeatureSpec(name=n, type="numeric") for n in NAMES],
                                   "drift": type(spec.drift)()})


def test_each_day_is_measured_against_a_pca_of_the_other_days() -> None:
    frame = _correlated(3000, seed=1)
    codes = np.repeat(np.arange(6), 500)
    columns = {name: frame[name].to_numpy() for name in NAMES}
    fitted = multivariate_entry(columns, frame.mean().to_dict(), frame.std().to_dict())
    assert fitted is not None
    entry, z = fitted
    assert len(entry["components"]) == 2
    assert np.array_equal(z, standardised(columns, entry["features"], entry["means"], entry["scales"]))
    ratios = per_day_ratios(entry, z, codes, 6)
    # Day 2 by hand: the PCA of the other days' rows, the day's rows centred on their mean.
    rest, day = z[codes != 2], z[codes == 2]
    values, vectors = np.linalg.eigh(np.cov(rest.T, bias=True))
    kept = vectors[:, ::-1][:, :2]
    residual = (day - rest.mean(0)) - (day - rest.mean(0)) @ kept @ kept.T
    expected = np.mean(np.sum(residual**2, axis=1)) / np.sort(values)[:2].sum()
    assert ratios[2] == pytest.approx(expected, rel=1e-9)
    assert all(r is not None and 0.8 < r < 1.25 for r in ratios)


def test_a_broken_correlation_is_multivariate_drift_that_no_feature_shows(four: Spec) -> None:
    frame = _correlated(20_000, seed=2)
    days = np.repeat(pd.date_range("2026-03-01", periods=20).to_numpy(), 1000)
    profile = json.loads(json.dumps(build_profile(four, frame, np.zeros(len(frame)), days=days)))
    same = check_drift(four, profile, _correlated(2000, seed=3), np.zeros(2000))
    assert not same.multivariate_drift and not same.dataset_drift
    broken = _correlated(2000, seed=4)
    broken["b"] = broken["b"].sample(frac=1, random_state=0).to_numpy()  # b keeps its distribution, not a's
    result = check_drift(four, profile, broken, np.zeros(2000))
    row = rows_of(result, MULTIVARIATE)["multivariate"]
    assert result.drifted_features == []  # every single feature is as before
    assert row.drifted and row.value > 2 * row.threshold and row.detail["threshold_source"] == "calibrated"
    assert result.multivariate_drift and result.dataset_drift
    assert row.detail["features"] == NAMES and row.detail["components"] == 2


def test_on_the_importance_basis_multivariate_drift_reports_and_does_not_decide(four: Spec) -> None:
    frame = _correlated(5000, seed=5)
    profile = build_profile(four, frame, np.zeros(len(frame)), importance=dict.fromkeys(NAMES, 1.0))
    broken = _correlated(2000, seed=6)
    broken["b"] = broken["b"].sample(frac=1, random_state=0).to_numpy()
    weighted = four.model_copy(update={"drift": four.drift.model_copy(update={"share_basis": "importance"})})
    result = check_drift(weighted, profile, broken, np.zeros(2000))
    assert result.multivariate_drift and not result.dataset_drift


def test_a_small_day_is_held_to_its_noise_floor(four: Spec) -> None:
    frame = _correlated(5000, seed=7)
    profile = build_profile(four, frame, np.zeros(len(frame)))
    entry = profile["multivariate"]
    assert noise_floor(entry, 100) == pytest.approx(1 + NOISE_SIGMAS * entry["error_cv"] / 10)
    row = rows_of(check_drift(four, profile, _correlated(20, seed=8), np.zeros(20)), MULTIVARIATE)["multivariate"]
    assert row.threshold == pytest.approx(noise_floor(entry, 20))
    assert noise_floor(entry, 20) > four.drift.multivariate_threshold
    assert row.detail["threshold_note"] == "raised to the noise floor of a day of 20 rows"


def test_fewer_than_two_usable_numeric_features_have_no_multivariate_row(four: Spec) -> None:
    frame = _correlated(1000, seed=9).assign(b=1.0, c=2.0, d=3.0)  # constant: no direction
    profile = build_profile(four, frame, np.zeros(len(frame)))
    assert profile["multivariate"] is None
    result = check_drift(four, profile, frame, np.zeros(len(frame)))
    assert result.feature_rows(MULTIVARIATE) == [] and not result.multivariate_drift

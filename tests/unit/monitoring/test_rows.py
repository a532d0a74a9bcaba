"""The row rule (`ml_batch.monitoring.rows`): a fixed threshold drifts at it, a calibrated one only beyond."""

from __future__ import annotations

import numpy as np
import pytest

from ml_batch.monitoring.rows import KsSubset, categorical_rows, normalised_wasserstein, numeric_shares
from ml_batch.monitoring.thresholds import Thresholds


def test_a_value_at_a_fixed_threshold_drifts_and_at_a_calibrated_one_does_not() -> None:
    reference = {"frequencies": {"a": 0.5, "b": 0.5}, "count": 100}
    counts = {"a": 70, "b": 30}
    psi_value = categorical_rows("f", reference, counts, Thresholds({"psi": 1.0}, "fixed"))[0].value
    assert psi_value is not None
    fixed = categorical_rows("f", reference, counts, Thresholds({"psi": psi_value}, "fixed"))
    calibrated = categorical_rows("f", reference, counts, Thresholds({"psi": psi_value}, "calibrated",
                                                                     calibrated={"psi": psi_value}))
    assert fixed[0].drifted and not calibrated[0].drifted
    assert calibrated[0].detail["calibrated_threshold"] == psi_value
    # A test without a threshold (chi2) reports and never decides.
    assert fixed[2].test == "chi2" and fixed[2].threshold is None and not fixed[2].drifted


def test_an_unlisted_category_goes_to_the_pooled_bucket_when_the_profile_has_one() -> None:
    thresholds = Thresholds({"psi": 0.2, "js": 0.1}, "fixed")
    pooled = {"frequencies": {"a": 0.6, "__other__": 0.4}, "count": 100}
    rows = categorical_rows("f", pooled, {"a": 60, "z": 40}, thresholds)
    assert rows[0].detail["unseen_total"] == 0 and not rows[0].drifted
    listed = {"frequencies": {"a": 0.6, "b": 0.4}, "count": 100}
    rows = categorical_rows("f", listed, {"a": 60, "z": 40}, thresholds)
    assert rows[0].detail["unseen"] == {"z": 40} and rows[0].drifted


def test_numeric_shares_are_right_closed_bins_then_the_null_share() -> None:
    values = np.array([0.0, 1.0, 1.5, 2.0, 3.0, np.nan])
    shares = numeric_shares(values, np.array([1.0, 2.0]))
    assert shares.tolist() == [2 / 6, 2 / 6, 1 / 6, 1 / 6]  # (-inf, 1], (1, 2], (2, inf), null


def test_ks_subset_takes_at_most_its_values_reproducibly() -> None:
    present = np.arange(1000.0)
    first = KsSubset(100, np.random.default_rng(1)).take(present)
    assert first.size == 100 and np.array_equal(first, KsSubset(100, np.random.default_rng(1)).take(present))
    assert KsSubset(None, np.random.default_rng(1)).take(present) is present


def test_the_wasserstein_row_is_in_reference_standard_deviations_and_survives_a_constant_reference() -> None:
    sample = np.sort(np.random.default_rng(3).normal(10, 2, 5000))
    shifted = sample + 1.0
    assert normalised_wasserstein({"std": 2.0, "mean": 10.0}, sample, shifted) == pytest.approx(0.5)
    constant = np.full(100, 7.0)
    value = normalised_wasserstein({"std": 0.0, "mean": 7.0}, constant, constant + 0.5)
    assert np.isfinite(value) and value > 1e6  # any change of a constant feature is far beyond any threshold
    assert normalised_wasserstein({"std": 0.0, "mean": 7.0}, constant, constant) == 0.0

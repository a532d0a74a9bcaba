"""The drift statistics (`ml_batch.monitoring.statistics`): equal to SciPy's or to a hand computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from ml_batch.monitoring.statistics import (
    calibrated_threshold,
    chi_square,
    js_distance,
    ks,
    ks_statistic,
    psi,
    wasserstein_sorted,
)


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


def test_calibrated_threshold_is_a_quantile_times_the_margin() -> None:
    assert calibrated_threshold([0.1, 0.3, 0.2], 1.0, 1.0) == pytest.approx(0.3)
    assert calibrated_threshold([0.0, 1.0], 0.5, 2.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no calibration value"):
        calibrated_threshold([], 1.0, 1.0)


@pytest.mark.parametrize(("m", "n"), [(1, 1), (50, 7), (5000, 50_000)])
def test_wasserstein_equals_scipy(m: int, n: int) -> None:
    rng = np.random.default_rng(m + n)
    ref, cur = np.sort(rng.lognormal(0, 1, m)), np.sort(np.round(rng.normal(1, 2, n), 1))
    assert wasserstein_sorted(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur), rel=1e-9, abs=1e-12)


def test_wasserstein_grows_with_the_distance_where_ks_saturates() -> None:
    ref = np.sort(np.random.default_rng(1).normal(0, 1, 2000))
    near, far = ref + 10, ref + 100
    assert ks_statistic(ref, near) == ks_statistic(ref, far) == 1.0
    assert wasserstein_sorted(ref, near) == pytest.approx(10) and wasserstein_sorted(ref, far) == pytest.approx(100)
    with pytest.raises(ValueError, match="wasserstein needs values on both sides, got 2000 and 0"):
        wasserstein_sorted(ref, np.array([]))

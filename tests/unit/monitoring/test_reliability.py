"""Whether a label-free estimate can be trusted (`ml_batch.monitoring.reliability.assess`)."""

from __future__ import annotations

import numpy as np
import pytest

from ml_batch.monitoring import reliability
from ml_batch.monitoring.reliability import MAX_SHARE_OUTSIDE, Reliability, assess

RNG = np.random.default_rng(0)
SCORES = RNG.uniform(0.05, 0.9, 2000)


def test_a_day_like_the_holdout_is_reliable_with_every_check_made() -> None:
    verdict = assess(SCORES, fitted_range=(0.01, 0.95), expected_positive_rate=0.31, holdout_positive_rate=0.29)
    assert verdict == Reliability(reliable=True)
    assert verdict.as_detail() == {"reliable": True, "unreliable_reasons": [], "reliability_unchecked": []}


def test_features_out_of_support_make_it_unreliable_and_are_named() -> None:
    verdict = assess(SCORES, fitted_range=(0.01, 0.95), out_of_support=["temp", "humidity"])
    assert not verdict.reliable and verdict.reasons == ("features out of support: temp, humidity",)


def test_scores_outside_the_fitted_range_beyond_the_allowed_share_make_it_unreliable() -> None:
    # 10% of the predictions above the holdout's highest: the loss model's last bin says nothing about them
    day = np.r_[RNG.uniform(10, 20, 900), RNG.uniform(30, 40, 100)]
    verdict = assess(day, fitted_range=(9.5, 25.0), what="predictions")
    assert verdict.reasons == ("10% of the day's predictions are outside the holdout's range 9.5..25 the estimate "
                               "was fitted on (at most 5%)",)
    # at the allowed share it stays reliable
    at_limit = np.r_[RNG.uniform(10, 20, 950), RNG.uniform(30, 40, 50)]
    assert np.mean(at_limit > 25) == MAX_SHARE_OUTSIDE and assess(at_limit, fitted_range=(9.5, 25.0)).reliable


@pytest.mark.parametrize(("expected", "reliable"), [(0.56, False), (0.16, False), (0.44, True), (0.18, True)])
def test_an_expected_positive_rate_far_from_the_holdouts_makes_it_unreliable(expected: float, reliable: bool) -> None:
    # holdout 0.29: odds 0.408; twice and half that are rates 0.450 and 0.170
    verdict = assess(SCORES, fitted_range=(0.0, 1.0), expected_positive_rate=expected, holdout_positive_rate=0.29)
    assert verdict.reliable is reliable
    if not reliable:
        [reason] = verdict.reasons
        assert reason.startswith(f"expected positive rate {expected:.3f} is far from the holdout's 0.290 (odds ratio ")
        assert reason.endswith("outside 0.5..2)")


def test_a_rare_positive_class_is_judged_by_its_odds_not_an_absolute_difference() -> None:
    assert not assess(SCORES, fitted_range=None, expected_positive_rate=0.05, holdout_positive_rate=0.02).reliable
    assert assess(SCORES, fitted_range=None, expected_positive_rate=0.03, holdout_positive_rate=0.02).reliable


def test_a_profile_without_the_references_names_the_checks_not_made_and_stays_reliable() -> None:
    verdict = assess(SCORES, fitted_range=None, expected_positive_rate=0.9, holdout_positive_rate=None)
    assert verdict.reliable and verdict.unchecked == (
        "scores within the holdout's range (not stored in the version's profile)",
        "expected positive rate against the holdout's (not stored in the version's profile)")
    # a regression estimate has no positive rate: nothing unchecked about it
    assert assess(SCORES, fitted_range=(0.0, 1.0)).unchecked == ()


def test_a_verdict_that_contradicts_its_reasons_is_refused() -> None:
    with pytest.raises(ValueError, match=r"reliable=True contradicts the reasons \['x'\]"):
        Reliability(reliable=True, reasons=("x",))
    with pytest.raises(ValueError, match="reliable=False contradicts the reasons"):
        Reliability(reliable=False)


def test_the_odds_band_widens_to_the_holdouts_own_days_and_never_narrows() -> None:
    # A source whose days differ (one weather per day): a holdout day at 0.071 against the pooled 0.137.
    low, high = reliability.odds_band(0.137, [0.071, 0.12, 0.2])
    widest_low = (0.071 / 0.929) / (0.137 / 0.863)
    assert low == pytest.approx(widest_low / reliability.DAY_RATE_MARGIN) and low < 0.5
    assert high == reliability.MAX_ODDS_RATIO  # the widest day above (1.57) is inside the fixed band
    assert reliability.odds_band(0.137, []) == (0.5, 2.0)
    kept = reliability.assess(np.array([0.1]), fitted_range=(0.0, 1.0), expected_positive_rate=0.071,
                              holdout_positive_rate=0.137, holdout_day_rates=[0.071, 0.2])
    assert kept.reliable
    far = reliability.assess(np.array([0.1]), fitted_range=(0.0, 1.0), expected_positive_rate=0.03,
                             holdout_positive_rate=0.137, holdout_day_rates=[0.071, 0.2])
    assert not far.reliable and "outside 0.39..2" in far.reasons[0]

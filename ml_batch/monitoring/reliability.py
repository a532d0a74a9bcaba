"""Whether a day's label-free estimate can be trusted: one decision, pure, with the numbers in its reasons.

A label-free estimate (`ml_batch.monitoring.estimate` for binary models, `ml_batch.monitoring.loss_estimate`
for regression) transports what the version's holdout taught it (a calibration map, a model of the loss) to
a day without labels. It is only as good as the day resembles that holdout. `assess` names what visibly
breaks the resemblance; any reason makes the estimate unreliable (`Reliability.reliable` is False):

- **features out of support**: the day's drift check found features whose rows lie outside what the version
  was trained on (`ml_batch.monitoring.drift`); the model extrapolates there, and so does the estimate;
- **scores outside the fitted range**: more than `MAX_SHARE_OUTSIDE` of the day's scores (binary) or
  predictions (regression) lie outside the range of the holdout's scores the calibration map or loss model
  was fitted on; there the map is clipped to its end values and says nothing;
- **the expected positive rate far from the holdout's** (binary): the day's expected odds of a positive
  (mean calibrated score) are more than `MAX_ODDS_RATIO` times, or less than 1 / `MAX_ODDS_RATIO` of, the
  holdout's positive odds, or beyond `DAY_RATE_MARGIN` times the widest ratio the holdout's own days showed
  (`odds_band`), whichever is wider. An odds ratio treats both classes alike and scales with the base rate
  (0.29 -> beyond 0.45 or below 0.17; 0.02 -> beyond 0.039 or below 0.010), where an absolute difference
  would be blind for rare positives and over-eager near 0.5.

**Old profiles.** A check whose reference was not stored when the version was registered (a profile from
before this rule, without the holdout's positive rate) is not made: it is named in `unchecked`, and the
estimate stays reliable on the checks that were made, as it was before. Calling every old version
unreliable would cry wolf on every day until it is retrained; `unchecked` says what was not verified.

What an unreliable estimate does with alerts is `ml_batch.monitoring.performance`'s rule: it raises no
floor alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_SHARE_OUTSIDE = 0.05
"""Most share of a day's scores outside the holdout's fitted range for a reliable estimate. On a day like the
holdout, the share beyond the holdout's own min and max is about 2 / (holdout rows + 1), well under 1%; 5% is
a part of the day large enough to move the estimate, and stays clear of a few stray rows on a small day."""
MAX_ODDS_RATIO = 2.0
"""Largest factor between the day's expected positive odds and the holdout's for a reliable estimate: the
holdout's positive rate 0.29 allows 0.17..0.45. Under a covariate shift the expected rate moves without
harm; a doubling of the odds is past what the demos' stable days show (within a factor 1.2) and is where the
isotonic map's few points in the sparse score region decide the estimate."""
DAY_RATE_MARGIN = 1.25
"""How far beyond the widest holdout day's odds ratio a day may go and stay reliable. On a source whose days
differ (one weather per day) the holdout's own days stray from the pooled rate by more than a factor 2 (a
winter holdout day at 0.071 against the pooled 0.137), and its estimate was still within 0.021 of the
realized accuracy; the largest of N holdout days is exceeded by an ordinary day about once in N + 1, so the
band reaches a quarter further."""
_RATE_CLIP = 1e-6


@dataclass(frozen=True)
class Reliability:
    """Whether an estimate can be trusted, and why not.

    Attributes:
        reliable: True when no reason speaks against it (always `not reasons`).
        reasons: Why it cannot be trusted, each with its numbers.
        unchecked: Checks that could not be made (their reference is not in the version's profile).
    """

    reliable: bool
    reasons: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.reliable == bool(self.reasons):
            raise ValueError(f"reliable={self.reliable} contradicts the reasons {list(self.reasons)}: an estimate is "
                             "reliable exactly when there is no reason against it")

    def as_detail(self) -> dict[str, Any]:
        """The entries an estimate record's `detail` carries."""
        return {"reliable": self.reliable, "unreliable_reasons": list(self.reasons),
                "reliability_unchecked": list(self.unchecked)}


def assess(
    scores: np.ndarray,
    *,
    fitted_range: tuple[float, float] | None,
    out_of_support: Sequence[str] = (),
    expected_positive_rate: float | None = None,
    holdout_positive_rate: float | None = None,
    holdout_day_rates: Sequence[float] = (),
    what: str = "scores",
) -> Reliability:
    """Whether a day's label-free estimate can be trusted (pure; the rules are the module's).

    Args:
        scores: The day's scores (binary) or predictions (regression) the estimate was computed from.
        fitted_range: (min, max) of the holdout scores the estimator was fitted on (None: not stored).
        out_of_support: The features the day's drift check found out of support.
        expected_positive_rate: The day's mean calibrated score (binary only; None: the check does not apply).
        holdout_positive_rate: The holdout's positive rate (None: not stored in the version's profile).
        holdout_day_rates: Each holdout day's expected positive rate: the band allowed is never narrower than
            `DAY_RATE_MARGIN` times the widest odds ratio a holdout day showed (`odds_band`).
        what: How the reasons name the scores ("scores", "predictions").

    Returns:
        The verdict, its reasons and the checks that could not be made.
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    reasons: list[str] = []
    unchecked: list[str] = []
    if out_of_support:
        reasons.append(f"features out of support: {', '.join(out_of_support)}")
    if fitted_range is None:
        unchecked.append(f"{what} within the holdout's range (not stored in the version's profile)")
    elif values.size:
        low, high = fitted_range
        share = float(np.mean((values < low) | (values > high)))
        if share > MAX_SHARE_OUTSIDE:
            reasons.append(f"{share:.0%} of the day's {what} are outside the holdout's range {low:.4g}..{high:.4g} "
                           f"the estimate was fitted on (at most {MAX_SHARE_OUTSIDE:.0%})")
    if expected_positive_rate is not None:
        if holdout_positive_rate is None:
            unchecked.append("expected positive rate against the holdout's (not stored in the version's profile)")
        else:
            ratio = _odds(expected_positive_rate) / _odds(holdout_positive_rate)
            low, high = odds_band(holdout_positive_rate, holdout_day_rates)
            if not low <= ratio <= high:
                reasons.append(f"expected positive rate {expected_positive_rate:.3f} is far from the holdout's "
                               f"{holdout_positive_rate:.3f} (odds ratio {ratio:.2f}, outside "
                               f"{low:.2g}..{high:.2g})")
    return Reliability(reliable=not reasons, reasons=tuple(reasons), unchecked=tuple(unchecked))


def odds_band(holdout_rate: float, day_rates: Sequence[float]) -> tuple[float, float]:
    """The odds ratios (day over holdout) an ordinary day may show: 1 / `MAX_ODDS_RATIO` .. `MAX_ODDS_RATIO`,
    widened to `DAY_RATE_MARGIN` times the lowest and highest ratio of the holdout's own days (pure)."""
    low, high = 1 / MAX_ODDS_RATIO, MAX_ODDS_RATIO
    ratios = [_odds(rate) / _odds(holdout_rate) for rate in day_rates]
    if ratios:
        low = min(low, min(ratios) / DAY_RATE_MARGIN)
        high = max(high, max(ratios) * DAY_RATE_MARGIN)
    return low, high


def _odds(rate: float) -> float:
    """p / (1 - p), the rate clipped away from 0 and 1 (a day with no expected positive has finite odds)."""
    p = min(max(float(rate), _RATE_CLIP), 1 - _RATE_CLIP)
    return p / (1 - p)

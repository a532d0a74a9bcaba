"""The thresholds a feature's statistics are compared with: fixed (the spec's) or calibrated (the reference's).

Given each training row's event day, the reference profile stores each statistic of each training day
against the rest of the reference (leave one day out), and the holdout scores' per holdout day
(`ml_batch.monitoring.profile`). With `drift.thresholds: calibrated` (the default) a statistic's threshold is
the `calibration_quantile` of those values times `calibration_margin` (and `unbounded_margin` for the tests
without a ceiling, `UNBOUNDED`), never below the fixed threshold, and
a value drifts only beyond it: features shared within a day (weather, calendar) make each day a narrow
cluster of the reference, which fixed thresholds call drift every day. Without enough calibrated days
(`calibration_min_days`), or with `drift.thresholds: fixed`, the spec's `psi_threshold`, `ks_threshold`,
`js_threshold`, `wasserstein_threshold` and `multivariate_threshold` apply, and a value drifts when they are
reached.

**Statistics newer than the profile.** A profile calibrated before the Wasserstein distance and the
multivariate statistic existed has per-day values for PSI, KS and JS only. Its calibrated thresholds leave
those two tests out (`Thresholds.missing`), and `check_drift` does not compute them, rather than hold a
clustered source against a fixed threshold its own days exceed: they come with the next trained version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_batch.monitoring.inputs import SCORE, is_class_feature
from ml_batch.monitoring.statistics import calibrated_threshold
from ml_batch.spec import Spec


@dataclass(frozen=True)
class Thresholds:
    """The thresholds of one feature's tests and where they come from ("fixed" or "calibrated").

    Attributes:
        values: The threshold of each test that has one ("psi", "ks", "js", "wasserstein", "multivariate",
            "out_of_support").
        source: "fixed" or "calibrated".
        note: Why the thresholds are not the calibrated ones: calibration was asked for but the fixed ones
            apply, or a noise floor raised one (`ml_batch.monitoring.multivariate.noise_floor`); None otherwise.
        calibrated: The calibrated value of each test, before the fixed floor.
        missing: Tests left out because the profile's calibration predates them (see above).
    """

    values: Mapping[str, float]
    source: str
    note: str | None = None
    calibrated: Mapping[str, float] = field(default_factory=dict)
    missing: tuple[str, ...] = ()


CALIBRATED_ONLY_WHEN_STORED = ("wasserstein", "multivariate")
"""Tests a calibrated profile may predate: without their per-day values they are not computed."""
UNBOUNDED = ("wasserstein", "multivariate")
"""Tests without a ceiling, whose calibrated thresholds are widened by `drift.unbounded_margin`.

A threshold calibrated at the largest of N reference days (`calibration_quantile` 1.0) is exceeded by an
ordinary new day about once in N + 1 days. For KS, PSI and JS the ceiling and the fixed floor keep that in
check; an unbounded statistic of a feature shared within a day has neither, and the multivariate one decides
the dataset verdict on its own: on a weather source with 40 training days, a holdout day more humid than any
training day was dataset drift. A margin of 1.25 kept its holdout days quiet and every July day flagged."""


def fixed_thresholds(spec: Spec, note: str | None = None) -> Thresholds:
    """The spec's fixed thresholds (`drift.psi_threshold`, `ks_threshold`, `js_threshold`,
    `wasserstein_threshold`, `multivariate_threshold`) and the out-of-support share (`out_of_support_share`,
    never calibrated: no day of the training window is out of support)."""
    drift = spec.drift
    return Thresholds({"psi": drift.psi_threshold, "ks": drift.ks_threshold, "js": drift.js_threshold,
                       "wasserstein": drift.wasserstein_threshold, "multivariate": drift.multivariate_threshold,
                       "out_of_support": drift.out_of_support_share},
                      "fixed", note)


def feature_thresholds(spec: Spec, profile: Mapping[str, Any], feature: str) -> Thresholds:
    """The thresholds `check_drift` compares one feature (or `__score__`) with: calibrated from the profile's
    per-day values when `drift.thresholds` is "calibrated" and the profile has enough days, else fixed.

    A calibrated threshold is never below the fixed one: calibration widens the thresholds of data whose
    days vary more than random samples of the reference would (features shared within a day), and leaves the
    fixed effect sizes in charge where they do not (a maximum over a few days of sampling noise would
    otherwise flag ordinary days).
    """
    drift = spec.drift
    if drift.thresholds == "fixed":
        return fixed_thresholds(spec)
    calibration = profile.get("calibration")
    if not isinstance(calibration, Mapping):
        return fixed_thresholds(spec, "the profile has no calibration (built before it, or from one day)")
    # The scores and a multiclass model's class rows (`ml_batch.monitoring.classes`) come from the holdout:
    # they are calibrated on its days.
    on_holdout = feature == SCORE or is_class_feature(feature)
    days = calibration.get("score_days" if on_holdout else "days") or []
    if feature == SCORE:
        observed = calibration.get("score")
    else:
        observed = (calibration.get("classes" if on_holdout else "values") or {}).get(feature)
    if not isinstance(observed, Mapping) or len(days) < drift.calibration_min_days:
        return fixed_thresholds(
            spec, f"calibrated on {len(days)} days, fewer than calibration_min_days {drift.calibration_min_days}")
    values = dict(fixed_thresholds(spec).values)
    calibrated: dict[str, float] = {}
    missing = tuple(test for test in CALIBRATED_ONLY_WHEN_STORED if test not in observed)
    for test in missing:
        del values[test]
    for test in values:
        per_day = [float(v) for v in observed.get(test) or [] if v is not None]
        if per_day:
            margin = drift.calibration_margin * (drift.unbounded_margin if test in UNBOUNDED else 1.0)
            calibrated[test] = calibrated_threshold(per_day, drift.calibration_quantile, margin)
            values[test] = max(values[test], calibrated[test])
    return Thresholds(values, "calibrated", calibrated=calibrated, missing=missing)

"""The rows of a drift check: one statistic of one feature against its reference, and whether it drifted.

A numeric feature (and the scores, under `__score__`) gets a PSI row (quantile bins of the reference plus a
null bin, so a jump in the null share is drift even when the non-null values are unchanged) and a KS row; a
categorical feature a PSI, a JS distance and a chi-square row. Categories never seen in the reference are
counted (listed in the row's detail) and go to an "unseen" bucket that takes part in PSI, JS and
chi-square. Bins are right-closed, `(-inf, e0], (e0, e1], ..., (ek, +inf)`.

A row drifted when its statistic reaches a fixed threshold or lies beyond a calibrated one
(`ml_batch.monitoring.thresholds`); p-values are reported next to the effect sizes but decide nothing.
Both the daily check (`ml_batch.monitoring.drift`) and the profile's calibration
(`ml_batch.monitoring.profile`) build their rows here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ml_batch.monitoring.inputs import NULL_BIN, OTHER, UNSEEN
from ml_batch.monitoring.statistics import bin_counts, bin_labels, chi_square, js_distance, ks_sorted, psi
from ml_batch.monitoring.thresholds import Thresholds

Test = Literal["ks", "psi", "js", "chi2"]
# Unseen categories listed by name in a row's detail (the total is always given).
_MAX_UNSEEN_LISTED = 50


@dataclass(frozen=True)
class DriftRow:
    """One statistic of one feature.

    Attributes:
        feature: Feature name, or `__score__` for the score distribution.
        test: "ks", "psi", "js" or "chi2".
        value: The statistic (None when it cannot be computed, e.g. KS on a column that is all null).
        threshold: The effect-size threshold it is compared with; None for p-value-only rows (chi2).
        p_value: The test's p-value, reported only (None for PSI and JS, which have none).
        drifted: `value >= threshold`; always False for rows without a threshold.
        detail: Extra facts for the report: reference/current shares per bin or category, unseen
            categories and their counts, sample sizes.
    """

    feature: str
    test: Test
    value: float | None
    threshold: float | None
    p_value: float | None
    drifted: bool
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class KsSubset:
    """How many current values KS may use, and the generator that picks them."""

    max_values: int | None
    rng: np.random.Generator

    def take(self, present: np.ndarray) -> np.ndarray:
        """`present`, or a random `max_values` of them when there are more."""
        if self.max_values is None or present.size <= self.max_values:
            return present
        return present[self.rng.choice(present.size, size=self.max_values, replace=False)]


def numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the values in each right-closed bin around `edges`, then the null (NaN) share."""
    present = values[~np.isnan(values)]
    return np.append(bin_counts(present, edges), values.size - present.size) / max(values.size, 1)


def numeric_rows(
    name: str, reference: Mapping[str, Any], values: np.ndarray, thresholds: Thresholds, ks_subset: KsSubset
) -> list[DriftRow]:
    """PSI (quantile bins + a null bin) and KS rows of one numeric feature or of the scores."""
    present = values[~np.isnan(values)]
    edges = np.asarray(reference["edges"], dtype=np.float64)
    ref_shares = [*map(float, reference["shares"]), float(reference["null_share"])]
    cur_shares = numeric_shares(values, edges).tolist()
    psi_detail = {
        "labels": [*bin_labels(edges), NULL_BIN],
        "reference": ref_shares,
        "current": cur_shares,
        "reference_count": reference["count"],
        "current_count": len(values),
        "reference_null_share": float(reference["null_share"]),
        "current_null_share": cur_shares[-1],
        "reference_mean": reference["mean"],
        "current_mean": float(present.mean()) if present.size else None,
        "reference_std": reference["std"],
        "current_std": float(present.std(ddof=1)) if present.size > 1 else None,
    }
    psi_row = _row(name, "psi", psi(ref_shares, cur_shares), thresholds, None, psi_detail)
    return [psi_row, _ks_row(name, reference, present, thresholds, ks_subset)]


def _ks_row(
    name: str, reference: Mapping[str, Any], present: np.ndarray, thresholds: Thresholds, ks_subset: KsSubset
) -> DriftRow:
    """The KS row of the non-null current values against the profile's sample."""
    sample = np.sort(np.asarray(reference["sample"], dtype=np.float64))
    compared = np.sort(ks_subset.take(present))
    detail: dict[str, Any] = {
        "reference_sample": int(sample.size),
        "current_values": int(present.size),
        "current_values_compared": int(compared.size),
    }
    if present.size == 0:
        # Every current value is null: there is no distribution to compare (PSI's null bin shows it).
        detail["skipped"] = "no non-null current value"
        return _row(name, "ks", None, thresholds, None, detail)
    d, p_value = ks_sorted(sample, compared)
    return _row(name, "ks", d, thresholds, p_value, detail)


def categorical_rows(
    name: str, reference: Mapping[str, Any], counts: dict[str, int], thresholds: Thresholds
) -> list[DriftRow]:
    """PSI, JS and chi2 rows of one categorical feature, with unseen categories counted."""
    ref_freqs: dict[str, float] = {str(k): float(v) for k, v in reference["frequencies"].items()}
    total = sum(counts.values())
    counts, unseen = _pool_unseen(counts, ref_freqs)
    unseen_total = sum(unseen.values())
    ref_shares = [*ref_freqs.values(), 0.0]
    cur_shares = [counts.get(category, 0) / total for category in ref_freqs] + [unseen_total / total]
    listed = dict(sorted(unseen.items(), key=lambda item: (-item[1], item[0]))[:_MAX_UNSEEN_LISTED])
    shared = {"unseen": listed, "unseen_total": unseen_total, "unseen_categories": len(unseen)}
    psi_value = psi(ref_shares, cur_shares)
    js_value = js_distance(ref_shares, cur_shares)
    chi2_value, chi2_p = chi_square(ref_freqs, counts)
    psi_detail = {
        "labels": [*ref_freqs, UNSEEN],
        "reference": ref_shares,
        "current": cur_shares,
        "reference_count": reference["count"],
        "current_count": total,
        **shared,
    }
    return [
        _row(name, "psi", psi_value, thresholds, None, psi_detail),
        _row(name, "js", js_value, thresholds, None, dict(shared)),
        _row(name, "chi2", chi2_value, None, chi2_p, dict(shared)),
    ]


def _pool_unseen(counts: dict[str, int], ref_freqs: Mapping[str, float]) -> tuple[dict[str, int], dict[str, int]]:
    """(counts, the unseen categories' counts): with an `__other__` bucket in the profile, which pooled its
    rarest categories, a category it does not list may be one of them: it goes there and none is unseen."""
    unseen = {category: count for category, count in counts.items() if category not in ref_freqs}
    if unseen and OTHER in ref_freqs:
        pooled = {**{k: v for k, v in counts.items() if k in ref_freqs}, OTHER: counts.get(OTHER, 0)}
        pooled[OTHER] += sum(unseen.values())
        return pooled, {}
    return counts, unseen


def _row(
    feature: str,
    test: Test,
    value: float | None,
    thresholds: Thresholds | None,
    p_value: float | None,
    detail: dict[str, Any],
) -> DriftRow:
    """A row; it drifted when it has a threshold and its value reaches a fixed one or lies beyond a calibrated
    one (a calibrated threshold is a value the reference's own days showed). p-values never decide."""
    threshold = None if thresholds is None else thresholds.values.get(test)
    if threshold is None or thresholds is None:
        return DriftRow(feature, test, value, None, p_value, False, detail)
    detail = {**detail, "threshold_source": thresholds.source}
    if test in thresholds.calibrated:
        detail["calibrated_threshold"] = thresholds.calibrated[test]
    if thresholds.note:
        detail["threshold_note"] = thresholds.note
    if value is None:
        drifted = False
    elif thresholds.source == "calibrated":
        drifted = value > threshold
    else:
        drifted = value >= threshold
    return DriftRow(feature, test, value, threshold, p_value, drifted, detail)

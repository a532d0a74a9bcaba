"""The rows of a drift check: one statistic of one feature against its reference, and whether it drifted.

A numeric feature (and the scores, under `__score__`) gets a PSI row (quantile bins of the reference plus a
null bin, so a jump in the null share is drift even when the non-null values are unchanged), a KS row and a
Wasserstein row; a categorical feature a PSI, a JS distance and a chi-square row. Categories never seen in
the reference are counted (listed in the row's detail) and go to an "unseen" bucket that takes part in PSI,
JS and chi-square. Bins are right-closed, `(-inf, e0], (e0, e1], ..., (ek, +inf)`.

A row drifted when its statistic reaches a fixed threshold or lies beyond a calibrated one
(`ml_batch.monitoring.thresholds`); p-values are reported next to the effect sizes but decide nothing.
Both the daily check (`ml_batch.monitoring.drift`) and the profile's calibration
(`ml_batch.monitoring.profile`) build their rows here.

**Wasserstein.** The "wasserstein" row is the Wasserstein-1 distance between the day's values (the KS subset)
and the profile's sample, divided by the reference's standard deviation (`normalised_wasserstein`): a mean
shift of 0.3 standard deviations is 0.3. It exists because KS, PSI and JS saturate: when every row of a day
shares the day's value (weather), one reference day against the rest of the reference already has a KS D
near 1 and a huge PSI, so their calibrated thresholds sit at the ceiling and no day can exceed them. The
Wasserstein distance grows with how *far* the day is, without bound, so a day beyond every reference day
exceeds a threshold calibrated on them. On a source of independent rows (each day a random sample) its
reference days vary by sampling noise only, and the fixed `drift.wasserstein_threshold` (0.2) stays in
charge, as the fixed KS threshold does. Categorical features get no such row: a categorical feature shared
within a day is one category per day, and "a day unlike every reference day" is then a category never seen,
which the out-of-support row counts; a per-row categorical's PSI and JS do not saturate.

**Out of support.** Each feature with a support in the profile also gets an "out_of_support" row: the share
of the day's non-null values outside the training window's range or categories (`ml_batch.monitoring.support`),
against `drift.out_of_support_share`. It decides (a feature whose values the model never saw has changed);
a day with no non-null value has none.

**Multivariate.** `multivariate_row` is the one row of feature `__multivariate__`
(`ml_batch.monitoring.multivariate`); it is no feature and takes no part in a feature's verdict.

**Null shares.** Each feature also gets a `null_share` row: the day's share of nulls (value), the reference's
(`detail["reference_null_share"]`) and, for numeric features, whether the day's values are constant while the
reference's were not (`detail["became_constant"]`). Its threshold is the reference's share plus
`NULL_SHARE_RISE` (0.1): the row is flagged drifted when the share rose by more than that. It is reported
only (`REPORTED_ONLY`) and never makes its feature drifted, because PSI already counts nulls (the null bin,
the `__missing__` category): counting them again would weigh one change twice. Refusing a day whose nulls
jumped is scoring's job (`validation.max_null_share`), before publish.

**No values.** A feature with no non-null value on the day gets the statistics that can be computed (PSI and
the null share; JS and chi-square for a categorical one) and no KS row: nothing is stored as a null
statistic. Each of its rows says `detail["status"] == "no values"` (`NO_VALUES`). It counts as drifted when
the reference had values (`feature_drifted`): a feature that vanished is a change of its distribution, whatever
the thresholds of the effect sizes say.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ml_batch.model.reference import entry_null_share
from ml_batch.monitoring import multivariate, support
from ml_batch.monitoring.inputs import MISSING, NULL_BIN, OTHER, UNSEEN
from ml_batch.monitoring.statistics import (
    bin_counts,
    bin_labels,
    chi_square,
    js_distance,
    ks_sorted,
    psi,
    wasserstein_sorted,
)
from ml_batch.monitoring.thresholds import Thresholds

Test = Literal["ks", "psi", "js", "chi2", "null_share", "wasserstein", "out_of_support", "multivariate"]
REPORTED_ONLY: frozenset[str] = frozenset({"chi2", "null_share"})
"""Tests whose rows are shown but never make their feature drifted (chi2: a p-value; null_share: see above)."""
NULL_SHARE_RISE = 0.1
"""A `null_share` row is flagged drifted when the day's null share exceeds the reference's by more than this."""
NO_VALUES = "no values"
"""`detail["status"]` of every row of a feature with no non-null value on the day."""
# Unseen categories listed by name in a row's detail (the total is always given).
_MAX_UNSEEN_LISTED = 50
# Floor of the Wasserstein distance's scale, relative to the reference mean's size (a constant reference).
_MIN_SCALE = 1e-9


@dataclass(frozen=True)
class DriftRow:
    """One statistic of one feature.

    Attributes:
        feature: Feature name, or `__score__` for the score distribution.
        test: "ks", "psi", "js", "chi2", "null_share", "wasserstein", "out_of_support" or "multivariate".
        value: The statistic. Always a number: a statistic that cannot be computed (KS of a feature with no
            value on the day) has no row.
        threshold: The threshold it is compared with; None for p-value-only rows (chi2).
        p_value: The test's p-value, reported only (None for PSI, JS and the null share, which have none).
        drifted: `value >= threshold` (beyond it, when calibrated); always False for rows without a threshold.
            For `REPORTED_ONLY` tests a flag for the reader, not part of the feature's verdict.
        detail: Extra facts for the report: reference/current shares per bin or category, unseen
            categories and their counts, sample sizes, `status` ("no values").
    """

    feature: str
    test: Test
    value: float
    threshold: float | None
    p_value: float | None
    drifted: bool
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # `drift_results.value` is NOT NULL and JSON has no NaN: a statistic that is not a finite number would
        # reach the database as NULL. Such a statistic has no row (see "No values" above).
        if not math.isfinite(self.value):
            raise ValueError(f"{self.test} of feature {self.feature!r} is {self.value!r}: expected a finite number "
                             "(a statistic that cannot be computed has no row)")


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
    """PSI (quantile bins + a null bin), KS and Wasserstein rows of one numeric feature or of the scores (no
    Wasserstein row when the thresholds leave it out, see `Thresholds.missing`)."""
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
    if present.size == 0:
        # Every current value is null: there is no distribution for KS to compare (PSI's null bin shows it).
        return [psi_row]
    sample = np.sort(np.asarray(reference["sample"], dtype=np.float64))
    compared = np.sort(ks_subset.take(present))
    rows = [psi_row, _ks_row(name, sample, present.size, compared, thresholds)]
    if "wasserstein" in thresholds.values:
        detail = {"reference_std": float(reference["std"]), "current_values_compared": int(compared.size)}
        rows.append(_row(name, "wasserstein", normalised_wasserstein(reference, sample, compared), thresholds,
                         None, detail))
    return rows


def normalised_wasserstein(reference: Mapping[str, Any], sample: np.ndarray, compared: np.ndarray) -> float:
    """The Wasserstein distance of two sorted samples in units of the reference's standard deviation (floored,
    so that a constant reference does not divide by 0): the one rule of the row and of its calibration."""
    scale = max(float(reference["std"]), _MIN_SCALE * max(1.0, abs(float(reference["mean"]))))
    return wasserstein_sorted(sample, compared) / scale


def support_row(name: str, detail: Mapping[str, Any] | None, thresholds: Thresholds) -> list[DriftRow]:
    """The out-of-support row of one feature from its facts (`support.numeric_support_detail` or
    `categorical_support_detail`), drifted when the share reaches `drift.out_of_support_share`; none without
    facts."""
    if detail is None:
        return []
    share = float(detail["share"])
    limit = thresholds.values[support.SUPPORT_TEST]
    entry = support.entry_from_detail(name, detail)
    facts = {**detail, "bound": entry.bound, "direction": entry.direction}
    return [DriftRow(name, "out_of_support", share, limit, None, share >= limit, facts)]


def multivariate_row(entry: Mapping[str, Any], z: np.ndarray, thresholds: Thresholds) -> DriftRow:
    """The `__multivariate__` row: the day's PCA reconstruction error over the reference's (rows as z-scores)."""
    detail = {"features": list(entry["features"]), "components": len(entry["components"]),
              "explained": entry["explained"], "rows": int(z.shape[0])}
    return _row(multivariate.MULTIVARIATE, "multivariate", multivariate.reconstruction_ratio(entry, z),
                thresholds, None, detail)


def numeric_feature_rows(
    name: str, reference: Mapping[str, Any], values: np.ndarray, thresholds: Thresholds, ks_subset: KsSubset
) -> list[DriftRow]:
    """A numeric feature's PSI, KS and Wasserstein rows (`numeric_rows`), its out-of-support row (with a support
    in the profile) and its null-share row, which also says whether the day's values are constant while the
    reference's were not; every row marked when the day has no value."""
    present = values[~np.isnan(values)]
    constant = bool(present.size > 1 and present.min() == present.max())
    reference_constant = float(reference["min"]) == float(reference["max"])
    shape = {"constant": constant, "reference_constant": reference_constant,
             "became_constant": constant and not reference_constant}
    current_share = 1 - present.size / values.size if values.size else 0.0
    rows = numeric_rows(name, reference, values, thresholds, ks_subset)
    if isinstance(reference.get("support"), Mapping) and present.size:
        rows.extend(support_row(name, support.numeric_support_detail(reference["support"], present), thresholds))
    rows.append(null_share_row(name, entry_null_share(reference), current_share, shape))
    return _marked(rows, no_values=present.size == 0)


def categorical_feature_rows(
    name: str, reference: Mapping[str, Any], counts: dict[str, int], thresholds: Thresholds
) -> list[DriftRow]:
    """A categorical feature's PSI, JS and chi2 rows (`categorical_rows`), its out-of-support row (with a
    complete support in the profile) and its null-share row (the share of `__missing__`); every row marked
    when every value is missing."""
    total = sum(counts.values())
    missing = counts.get(MISSING, 0)
    rows = categorical_rows(name, reference, counts, thresholds)
    if isinstance(reference.get("support"), Mapping):
        rows.extend(support_row(name, support.categorical_support_detail(reference["support"], counts), thresholds))
    rows.append(null_share_row(name, entry_null_share(reference), missing / total if total else 0.0, {}))
    return _marked(rows, no_values=missing == total)


def null_share_row(name: str, reference_share: float, current_share: float, detail: Mapping[str, Any]) -> DriftRow:
    """The day's null share against the reference's: flagged when it rose by more than `NULL_SHARE_RISE`."""
    threshold = reference_share + NULL_SHARE_RISE
    facts = {"reference_null_share": reference_share, "current_null_share": current_share,
             "rise": current_share - reference_share, "max_rise": NULL_SHARE_RISE, **detail}
    return DriftRow(name, "null_share", current_share, threshold, None, current_share > threshold, facts)


def has_no_values(rows: Sequence[DriftRow]) -> bool:
    """Whether a feature's rows say it had no non-null value on the day."""
    return any(row.detail.get("status") == NO_VALUES for row in rows)


def vanished(rows: Sequence[DriftRow]) -> bool:
    """Whether a feature had values in the reference but none on the day (its null-share row tells both)."""
    return has_no_values(rows) and any(
        row.test == "null_share" and float(row.detail["reference_null_share"]) < 1 for row in rows)


def feature_drifted(rows: Sequence[DriftRow]) -> bool:
    """The one rule of a feature's verdict: a row of a deciding test drifted (not `REPORTED_ONLY`), or the
    feature vanished (`vanished`)."""
    return any(row.drifted for row in rows if row.test not in REPORTED_ONLY) or vanished(rows)


def _marked(rows: list[DriftRow], *, no_values: bool) -> list[DriftRow]:
    """The rows, each with `detail["status"] = NO_VALUES` when the feature had no value on the day."""
    if not no_values:
        return rows
    return [replace(row, detail={**row.detail, "status": NO_VALUES}) for row in rows]


def _ks_row(name: str, sample: np.ndarray, n_present: int, compared: np.ndarray, thresholds: Thresholds) -> DriftRow:
    """The KS row of the (sorted, non-empty) compared current values against the profile's sorted sample."""
    detail: dict[str, Any] = {
        "reference_sample": int(sample.size),
        "current_values": int(n_present),
        "current_values_compared": int(compared.size),
    }
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
    value: float,
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
    if thresholds.source == "calibrated":
        drifted = value > threshold
    else:
        drifted = value >= threshold
    return DriftRow(feature, test, value, threshold, p_value, drifted, detail)


def stored_row_note(test: str, detail: Mapping[str, Any] | None) -> str:
    """What a stored drift row's detail adds, for a reader (the UI, the CLI): the feature had no values, the
    reference's null share, the values became constant, the row is reported only."""
    detail = detail or {}
    notes = [str(detail["status"])] if detail.get("status") else []
    if test == "null_share" and detail.get("reference_null_share") is not None:
        notes.append(f"reference {float(detail['reference_null_share']):.1%}")
    if detail.get("became_constant"):
        notes.append("constant (the reference was not)")
    if test in REPORTED_ONLY:
        notes.append("reported only")
    return "; ".join(notes)

"""Multivariate drift: one number per day, how badly the reference's principal components reconstruct it.

Univariate statistics miss a change in how features move together (two features that each keep their
distribution but stop being correlated). NannyML's answer, followed here: standardise the numeric features
with the reference's means and standard deviations (nulls imputed with the reference mean, i.e. 0), fit a
PCA on the reference keeping the fewest components that explain `VARIANCE_KEPT` (65%) of the variance, and
measure each row's reconstruction error, the squared distance between the row and its projection on those
components. A day whose rows no longer follow the reference's correlation structure is reconstructed worse.

**The statistic** (`DriftRow` of feature `MULTIVARIATE`, test "multivariate") is the day's mean squared
reconstruction error over the reference's (the sum of the discarded eigenvalues): 1 for a day like the
reference, unbounded above. It is calibrated like the rest: the profile stores each reference day's value
against a PCA of the *other* days (leave one day out, exact and cheap because a mean squared error needs only
each day's row count, sum and cross-product matrix), and `ml_batch.monitoring.thresholds` turns them into a
threshold, never below `drift.multivariate_threshold`. Only an increase is drift: a day reconstructed better
than the reference (less variable, more correlated) is reported, not flagged.

Categorical features are left out: their one-hot columns would dominate the components of a few numeric
ones, and their distributions are compared category by category already. Numeric features that are
constant in the reference carry no direction and are left out too; with fewer than two usable features
there is no multivariate row.

**Cost.** At registration one pass builds each day's sums (a p x p cross-product per day, 200,000 rows x 20
features in ~0.1 s), then one 20 x 20 eigen-decomposition per day; a day's check is one projection of its
rows (50,000 x 20 in ~10 ms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

MULTIVARIATE = "__multivariate__"
"""Feature name of the multivariate drift row."""
TEST = "multivariate"
VARIANCE_KEPT = 0.65
"""Share of the reference's variance the kept components explain (NannyML's default)."""
NOISE_SIGMAS = 4.0
"""Standard errors of a day's mean error that `noise_floor` allows for."""
# A reference reconstructed (almost) perfectly would make every ratio huge: its error is floored at this.
_MIN_ERROR = 1e-9
_SPREAD_ROWS = 20_000


def multivariate_entry(columns: Mapping[str, np.ndarray], means: Mapping[str, float],
                       scales: Mapping[str, float]) -> tuple[dict[str, Any], np.ndarray] | None:
    """The profile's "multivariate" entry: the standardisation, the kept components and the reference error,
    with the reference rows as z-scores (for `per_day_ratios`).

    Args:
        columns: Each numeric feature's reference values (NaN = null), all of the same length.
        means: Each feature's reference mean.
        scales: Each feature's reference standard deviation (features with 0 are left out).

    Returns:
        ({"features", "means", "scales", "components" (k rows of p), "reference_error", "explained",
        "error_cv"} (JSON), the (n, p) z-scores), or None with fewer than two non-constant features.
    """
    names = [name for name in columns if float(scales[name]) > 0]
    if len(names) < 2:
        return None
    entry_means = [float(means[name]) for name in names]
    entry_scales = [float(scales[name]) for name in names]
    z = standardised(columns, names, entry_means, entry_scales)
    n = z.shape[0]
    components, reference_error, explained = _pca(z.T @ z / n - np.outer(z.mean(0), z.mean(0)))
    # The spread of the per-row errors, on at most _SPREAD_ROWS evenly spaced rows (its second decimal is enough).
    errors = _row_errors(components, (z - z.mean(0))[:: max(1, n // _SPREAD_ROWS)])
    spread = float(errors.std() / max(float(errors.mean()), _MIN_ERROR))
    entry = {"features": names, "means": entry_means, "scales": entry_scales, "components": components.tolist(),
             "reference_error": reference_error, "explained": explained, "error_cv": spread}
    return entry, z


def noise_floor(entry: Mapping[str, Any], rows: int) -> float:
    """The ratio a day of `rows` rows like the reference reaches by chance: 1 + `NOISE_SIGMAS` standard errors
    of a mean of `rows` per-row errors (their coefficient of variation in the reference, "error_cv").

    A calibrated threshold is a maximum over reference days of their own size; a smaller day is noisier
    (per-row squared errors are heavy-tailed: one extreme row moves a small day's mean), and this floor keeps
    it from being called drift. 0 for an entry without "error_cv".
    """
    spread = entry.get("error_cv")
    if spread is None or rows < 1:
        return 0.0
    return 1.0 + NOISE_SIGMAS * float(spread) / float(np.sqrt(rows))


def standardised(columns: Mapping[str, np.ndarray], names: Sequence[str], means: Sequence[float],
                 scales: Sequence[float]) -> np.ndarray:
    """The rows as a (n, p) matrix of z-scores against the reference, nulls (and infinities) as 0."""
    z = np.column_stack([(np.asarray(columns[name], dtype=np.float64) - mean) / scale
                         for name, mean, scale in zip(names, means, scales, strict=True)])
    return np.where(np.isfinite(z), z, 0.0)


def reconstruction_ratio(entry: Mapping[str, Any], z: np.ndarray) -> float:
    """A day's mean squared reconstruction error (rows as z-scores, `standardised`) over the reference's."""
    errors = _row_errors(np.asarray(entry["components"], dtype=np.float64), z)
    return float(np.mean(errors)) / max(float(entry["reference_error"]), _MIN_ERROR)


def _row_errors(components: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Each row's squared distance to its projection on the components."""
    residual = z - (z @ components.T) @ components
    return np.einsum("ij,ij->i", residual, residual)


def per_day_ratios(entry: Mapping[str, Any], z: np.ndarray, codes: np.ndarray, n_days: int) -> list[float | None]:
    """Each reference day's ratio against a PCA of the other days (leave one day out), in day order.

    With the rest's mean m, covariance C and kept components V (projection P = I - V V'), the day's mean
    squared error is trace(P M) with M the day's second moment about m, and the rest's is trace(P C): both
    come from each day's count, sum and cross-product matrix. None for a day alone in the reference.
    """
    p = z.shape[1]
    counts = np.bincount(codes, minlength=n_days).astype(np.float64)
    sums = np.zeros((n_days, p))
    np.add.at(sums, codes, z)
    products = np.zeros((n_days, p, p))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(n_days + 1))
    for day in range(n_days):
        rows = z[order[bounds[day]:bounds[day + 1]]]
        products[day] = rows.T @ rows
    total_n, total_sum, total_products = counts.sum(), sums.sum(0), products.sum(0)
    k = len(entry["components"])
    ratios: list[float | None] = []
    for day in range(n_days):
        rest_n = total_n - counts[day]
        if rest_n < 2 or counts[day] == 0:
            ratios.append(None)
            continue
        mean = (total_sum - sums[day]) / rest_n
        covariance = (total_products - products[day]) / rest_n - np.outer(mean, mean)
        components, rest_error, _ = _pca(covariance, k)
        projection = np.eye(p) - components.T @ components
        day_mean = sums[day] / counts[day]
        moment = (products[day] / counts[day] - np.outer(mean, day_mean) - np.outer(day_mean, mean)
                  + np.outer(mean, mean))
        ratios.append(float(np.trace(projection @ moment)) / max(rest_error, _MIN_ERROR))
    return ratios


def _pca(covariance: np.ndarray, k: int | None = None) -> tuple[np.ndarray, float, float]:
    """(kept components as rows, the discarded variance = the mean squared reconstruction error, the share of
    variance kept): the fewest components explaining `VARIANCE_KEPT`, at least 1 and at most p - 1 (or `k`)."""
    eigenvalues, vectors = np.linalg.eigh((covariance + covariance.T) / 2)
    eigenvalues = np.clip(eigenvalues[::-1], 0.0, None)
    vectors = vectors[:, ::-1]
    total = float(eigenvalues.sum())
    if k is None:
        explained = np.cumsum(eigenvalues) / total if total > 0 else np.ones_like(eigenvalues)
        k = int(min(max(1, np.searchsorted(explained, VARIANCE_KEPT) + 1), eigenvalues.size - 1))
    kept = float(eigenvalues[:k].sum())
    return vectors[:, :k].T, float(eigenvalues[k:].sum()), kept / total if total > 0 else 1.0

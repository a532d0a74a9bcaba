"""A version's reference profile: what drift checks and label-free estimates need about its data, computed
once, when the version is registered, so they never re-read the training window.

**Reference profile.** `build_profile` summarises a version's training data into a JSON-serialisable dict
stored with it. Per numeric feature (and for the model's scores, under "score"): quantile bin cut points,
the share of rows in each bin and the null share, count, mean/std, min/max and a bounded, seeded random
sample of the non-null values (for KS). Per categorical feature: the share of each category, nulls counted
under `__missing__`, the rarest beyond `max_categories` pooled under `__other__`; categories are the values
as `ml_batch.categories` turns them into strings. Bins are right-closed, `(-inf, e0], (e0, e1], ...,
(ek, +inf)`; only the interior cut points are stored ("edges"), because JSON has no infinity (PostgreSQL's
jsonb rejects `Infinity`).

**Support.** Each feature's entry also holds its "support" (`ml_batch.monitoring.support`): the band of its
values (or its categories) over the training window, the training rows and the holdout rows together
(`support_frame`), so that no day of the window is out of support.

**Multiclass.** A multiclass model's profile also holds "classes" (`ml_batch.monitoring.classes`): its class
names, the holdout's predicted-class mix and each class's probability profile, calibrated per holdout day as
the scores are; its "score" is the probability of each holdout row's predicted class (the published score).

**Multivariate.** "multivariate" holds the standardisation and principal components of the numeric
features (`ml_batch.monitoring.multivariate`), at most p x p numbers.

**Calibration.** Given each training row's event day, the profile also stores each statistic of each
training day against the rest of the reference (leave one day out: PSI, KS and the Wasserstein distance of
numeric features, PSI and JS of categorical ones, and the multivariate statistic under `__multivariate__`),
and the holdout scores' per holdout day, from which `ml_batch.monitoring.thresholds` calibrates the
thresholds. That is one number per day and statistic: 200 days x 20 features x 3 statistics is 12,000
numbers, against the 100,000 of the features' KS samples. The profile may also hold each
feature's permutation importance (for the importance-weighted drift share of `ml_batch.monitoring.drift`)
and a binary model's score calibration map (`ml_batch.monitoring.estimate`).

**Cost.** A profile of 200,000 rows x 20 features takes 0.3-0.45 s on a 2-core VM. Calibration adds one
pass per training day: 200,000 rows x 11 features over 50 days took 3.6 s instead of 0.6 s; 200,000 rows
x 20 numeric features over 50 days take 3.3 s (2.1 s before the Wasserstein and multivariate calibration).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ml_batch.categories import category_counts
from ml_batch.jsonvalues import json_safe
from ml_batch.monitoring import multivariate
from ml_batch.monitoring.classes import ClassScores
from ml_batch.monitoring.estimate import fit_estimators
from ml_batch.monitoring.inputs import (
    MISSING,
    OTHER,
    PREDICTED_CLASS,
    PROFILE_VERSION,
    SCORE,
    DriftInputError,
    class_feature,
    column,
    numeric_values,
    score_values,
)
from ml_batch.monitoring.rows import KsSubset, categorical_rows, normalised_wasserstein, numeric_shares
from ml_batch.monitoring.statistics import KS_MAX_VALUES, bin_counts, ks_statistic, psi
from ml_batch.monitoring.support import support_entry
from ml_batch.monitoring.thresholds import fixed_thresholds
from ml_batch.spec import Spec

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)

ByDay = dict[str, list[float | None]]
"""A feature's statistics per reference day: {test: [value of each day, in day order]}."""


def reference_profile(spec: Spec, pipeline: Pipeline, reference: pd.DataFrame, holdout: pd.DataFrame,
                      holdout_scores: np.ndarray) -> dict[str, Any]:
    """What drift checks and estimates need about a version's data, computed once at registration so they
    never re-read the window: the reference rows with their event days (thresholds are calibrated on the
    reference's own day-to-day variation), the holdout scores, feature importances and, for binary models,
    the score calibration behind label-free performance estimates (`ml_batch.monitoring.estimate`)."""
    # Imported here: building a profile from a frame (`build_profile`) needs neither scikit-learn nor training.
    from ml_batch.features import feature_frame
    from ml_batch.model.training import EVENT_DAY, class_names, labels_of, permutation_importance

    holdout_features = feature_frame(holdout, spec)
    profile = build_profile(spec, feature_frame(reference, spec), holdout_scores,
                            days=reference[EVENT_DAY].to_numpy(), score_days=holdout[EVENT_DAY].to_numpy(),
                            importance=permutation_importance(pipeline, holdout, spec),
                            support_frame=holdout_features,
                            classes=class_names(pipeline) if spec.model.task == "multiclass" else None)
    profile.update(fit_estimators(spec, holdout_features, holdout_scores, labels_of(holdout, spec),
                                  days=holdout[EVENT_DAY].to_numpy()))
    return profile


@dataclass(frozen=True)
class _Sampling:
    """How a profile samples: values kept per numeric feature, the seed, categories kept, KS subset size, and
    the rows that widen the support (the holdout) with the support's quantile band."""

    sample_size: int
    seed: int
    max_categories: int
    ks_max_values: int | None
    support_frame: pd.DataFrame | None
    support_quantiles: tuple[float, float]


@dataclass(frozen=True)
class _Days:
    """The event day of each row as a code, and the ISO day of each code (at least two distinct days)."""

    codes: np.ndarray
    labels: list[str]


def build_profile(
    spec: Spec,
    frame: pd.DataFrame,
    scores: np.ndarray,
    *,
    sample_size: int = 5000,
    seed: int = 0,
    max_categories: int = 1000,
    days: Sequence[Any] | np.ndarray | None = None,
    score_days: Sequence[Any] | np.ndarray | None = None,
    ks_max_values: int | None = KS_MAX_VALUES,
    importance: Mapping[str, float] | None = None,
    support_frame: pd.DataFrame | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Profile a model version's training data, to check later batches against.

    With `days` (the event day of each row of `frame`), the profile also records the reference's own
    day-to-day variation ("calibration"): each statistic of each day against the rest of the reference
    (leave one day out: bin shares without that day, the KS sample without that day's values), which
    `check_drift` turns into calibrated thresholds. `score_days` does the same for the scores.

    Args:
        spec: The model spec (feature names and types, `drift.bins`).
        frame: The training rows, with a column per feature.
        scores: The model's scores (predictions) on those rows, or on the holdout.
        sample_size: Most values kept per numeric feature for KS (sampled without replacement).
        seed: Seed of that sampling; the same inputs give the same profile.
        max_categories: Most categories kept per categorical feature; the rarest beyond that are pooled
            into `__other__` (the profile stays bounded even for a high-cardinality column, at the price
            of not telling a new category from a pooled one).
        days: Event day of each row of `frame` (None: no calibration).
        score_days: Event day of each score (None: the scores are not calibrated).
        ks_max_values: Most values of one day that a calibration KS compares (as in `check_drift`).
        importance: Each feature's importance to the model (permutation importance on the holdout; negative
            values count as 0), stored for the importance-weighted drift share.
        support_frame: More rows of the training window (the holdout) whose values count as seen: each
            feature's support is the `drift.support_quantiles` band (or the categories) of `frame` and these.
        classes: A multiclass model's class names (`ml_batch.model.training.class_names`): `scores` are then
            its (n, k) probabilities in that order, "score" profiles the probability of each row's predicted
            class (what the predictions table's `score` holds) and "classes" the predicted-class mix and each
            class's probability (`ml_batch.monitoring.classes`), calibrated on `score_days`.

    Returns:
        A JSON-serialisable dict (no NaN, no infinity) with "profile_version", "bins", "n_rows",
        "features" (one entry per feature, keyed by name, each with its "support"), "score",
        "multivariate" (None with fewer than two non-constant numeric features) and, with `days`,
        "calibration": {"days": [ISO day, ...], "values": {feature: {test: [value per day]}}, "score_days":
        [...]}, and with `importance`, "importance": {feature: value >= 0}. With `classes`, "classes":
        {"names": [...], "predicted": the mix as a categorical entry, "scores": {class: numeric entry}} and
        the calibration's "classes": {row feature: {test: [value per score day]}}.

    Raises:
        DriftInputError: If the frame or scores are empty, a column is missing or of the wrong type, or a
            numeric feature has no non-null value.
    """
    if sample_size < 1:
        raise DriftInputError(f"sample_size must be >= 1, got {sample_size!r}")
    if max_categories < 1:
        raise DriftInputError(f"max_categories must be >= 1, got {max_categories!r}")
    started = time.perf_counter()
    sampling = _Sampling(sample_size, seed, max_categories, ks_max_values, support_frame,
                         spec.drift.support_quantiles)
    row_days = _days(days, len(frame), "days")
    features, by_feature = _profile_features(spec, frame, sampling, row_days)
    multivariate_entry, multivariate_days = _multivariate(spec, frame, features, row_days)
    if multivariate_days is not None:
        by_feature[multivariate.MULTIVARIATE] = {multivariate.TEST: multivariate_days}
    predictions = None if classes is None else ClassScores.from_probabilities(classes, scores)
    if predictions is not None:
        # The published score of a multiclass row is the probability of its predicted class.
        scores = predictions.probabilities.max(axis=1) if len(predictions.predicted) else scores.ravel()
    scored = score_values(scores, "reference scores")
    score_rng = np.random.default_rng([seed, len(spec.features)])
    score_entry, score_positions = _numeric_profile(scored, SCORE, spec.drift.bins, sample_size, score_rng)
    profile: dict[str, Any] = {
        "profile_version": PROFILE_VERSION,
        "bins": spec.drift.bins,
        "n_rows": len(frame),
        "features": features,
        "score": score_entry,
        "multivariate": multivariate_entry,
    }
    if importance is not None:
        profile["importance"] = _importance(spec, importance)
    class_positions: dict[str, np.ndarray] = {}
    if predictions is not None:
        profile["classes"], class_positions = _class_profile(spec, predictions, sampling)
    if row_days is not None:
        score_subset = KsSubset(ks_max_values, np.random.default_rng([seed, len(spec.features), 1]))
        holdout_days = _days(score_days, scored.size, "score_days")
        profile["calibration"] = _calibration(by_feature, row_days, score_entry, scored, score_positions,
                                              holdout_days, score_subset)
        if predictions is not None and holdout_days is not None:
            profile["calibration"]["classes"] = _class_calibration(spec, profile["classes"], predictions,
                                                                   class_positions, holdout_days, sampling)
        profile = json_safe(profile)
    logger.info(
        "profiled %d rows x %d features for model %s in %.2fs",
        len(frame), len(spec.features), spec.name, time.perf_counter() - started,
    )  # fmt: skip
    return profile


def _profile_features(
    spec: Spec, frame: pd.DataFrame, sampling: _Sampling, days: _Days | None
) -> tuple[dict[str, dict[str, Any]], dict[str, ByDay]]:
    """Each feature's entry, and (with `days`) its statistics per reference day, in spec order."""
    features: dict[str, dict[str, Any]] = {}
    by_feature: dict[str, ByDay] = {}
    for index, feature in enumerate(spec.features):
        if len(frame) == 0:
            raise DriftInputError(f"reference frame has no rows: cannot profile feature {feature.name!r}")
        values = column(frame, feature, "reference frame")
        more = None if sampling.support_frame is None else column(sampling.support_frame, feature, "support frame")
        if feature.type == "numeric":
            features[feature.name], by_day = _numeric_feature(feature.name, values, index, spec.drift.bins,
                                                              sampling, days)
            seen: Any = numeric_values(values if more is None else pd.concat([values, more]), feature.name)
        else:
            features[feature.name] = _categorical_profile(values, sampling.max_categories)
            by_day = None if days is None else _categorical_calibration(
                feature.name, features[feature.name], values, days, spec)
            seen = [*category_counts(values), *(category_counts(more) if more is not None else {})]
        features[feature.name]["support"] = support_entry(seen, sampling.support_quantiles, sampling.max_categories)
        if by_day is not None:
            by_feature[feature.name] = by_day
    return features, by_feature


def _numeric_feature(
    name: str, column_values: pd.Series, index: int, bins: int, sampling: _Sampling, days: _Days | None
) -> tuple[dict[str, Any], ByDay | None]:
    """One numeric feature's entry and (with `days`) its statistics per reference day."""
    values = numeric_values(column_values, name)
    rng = np.random.default_rng([sampling.seed, index])
    entry, positions = _numeric_profile(values, name, bins, sampling.sample_size, rng)
    if days is None:
        return entry, None
    ks_subset = KsSubset(sampling.ks_max_values, np.random.default_rng([sampling.seed, index, 1]))
    return entry, _numeric_calibration(entry, values, positions, days, ks_subset)


def _numeric_profile(
    values: np.ndarray, name: str, bins: int, sample_size: int, rng: np.random.Generator
) -> tuple[dict[str, Any], np.ndarray]:
    """Quantile bins, shares, moments and a bounded sample of one numeric column (NaN = null), and the
    positions in `values` of the sampled values (for calibration, which leaves one day's values out)."""
    finite_at = np.flatnonzero(np.isfinite(values))
    order = finite_at[np.argsort(values[finite_at], kind="stable")]
    present = values[order]
    count = len(values)
    if present.size == 0:
        raise DriftInputError(
            f"feature {name!r} has no non-null value in the reference data ({count} rows): "
            "cannot build its quantile bins"
        )
    # Interior cut points at the 1/bins, ..., (bins-1)/bins quantiles; ties (a discrete or heavily repeated
    # value) collapse to one edge, so a feature may have fewer bins than asked for.
    edges = np.unique(np.quantile(present, np.arange(1, bins) / bins))
    counts = bin_counts(present, edges)
    if present.size > sample_size:
        chosen = np.sort(rng.choice(present.size, size=sample_size, replace=False))
    else:
        chosen = np.arange(present.size)
    sample = present[chosen]
    return {
        "type": "numeric",
        "count": count,
        "null_share": float(1 - present.size / count),
        "mean": float(present.mean()),
        "std": float(present.std(ddof=1)) if present.size > 1 else 0.0,
        "min": float(present[0]),
        "max": float(present[-1]),
        "edges": edges.tolist(),
        "shares": (counts / count).tolist(),
        "sample": sample.tolist(),
    }, order[chosen]


def _categorical_profile(values: pd.Series, max_categories: int) -> dict[str, Any]:
    """Share of each category (nulls under `__missing__`) of one categorical column."""
    counts = category_counts(values)
    missing = counts.pop(MISSING, 0)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = dict(ranked[:max_categories])
    pooled = sum(count for _, count in ranked[max_categories:])
    total = len(values)
    frequencies = {category: count / total for category, count in kept.items()}
    if pooled:
        frequencies[OTHER] = pooled / total
    frequencies[MISSING] = missing / total
    return {
        "type": "categorical",
        "count": total,
        "frequencies": frequencies,
        "pooled_categories": len(ranked) - len(kept),
    }


def _importance(spec: Spec, importance: Mapping[str, float]) -> dict[str, float]:
    """Each feature's importance, negative values as 0, in spec order."""
    if set(importance) != set(spec.feature_names):
        raise DriftInputError(f"importance must name exactly the spec's features {spec.feature_names}, "
                              f"got {sorted(importance)}")
    return {name: max(0.0, float(importance[name])) for name in spec.feature_names}


def _days(days: Sequence[Any] | np.ndarray | None, n: int, what: str) -> _Days | None:
    """The rows' event days as codes; None without days or with fewer than two distinct days, where leaving
    one day out leaves nothing to compare it with."""
    if days is None:
        return None
    values = pd.to_datetime(pd.Series(np.asarray(days)), errors="coerce")
    if len(values) != n:
        raise DriftInputError(f"{what} has {len(values)} entries but there are {n} rows: give one day per row")
    if values.isna().any():
        bad = np.asarray(days)[values.isna().to_numpy()][:5].tolist()
        raise DriftInputError(f"{what} holds values that are not days: {bad!r}")
    codes, uniques = pd.factorize(values.dt.date, sort=True)
    if len(uniques) < 2:
        return None
    return _Days(codes.astype(np.int64), [day.isoformat() for day in uniques])


def _calibration(
    by_feature: dict[str, ByDay],
    days: _Days,
    score_entry: Mapping[str, Any],
    scores: np.ndarray,
    score_positions: np.ndarray,
    score_days: _Days | None,
    score_subset: KsSubset,
) -> dict[str, Any]:
    """The profile's "calibration": the days, each feature's statistics per day, and the scores' per score day."""
    calibrated: dict[str, Any] = {"days": days.labels, "values": by_feature}
    if score_days is not None:
        calibrated["score_days"] = score_days.labels
        calibrated["score"] = _numeric_calibration(score_entry, scores, score_positions, score_days, score_subset)
    return calibrated


def _numeric_calibration(
    reference: Mapping[str, Any], values: np.ndarray, positions: np.ndarray, days: _Days, ks_subset: KsSubset
) -> ByDay:
    """PSI, KS D and the (normalised) Wasserstein distance of each reference day against the rest of the
    reference (the same bins, the sample without that day's values), in day order; None where a side has
    no value."""
    edges = np.asarray(reference["edges"], dtype=np.float64)
    total = numeric_shares(values, edges) * values.size
    sample, sample_days = values[positions], days.codes[positions]
    by_day: ByDay = {"psi": [], "ks": [], "wasserstein": []}
    for code in range(len(days.labels)):
        day_values = values[days.codes == code]
        day_counts = numeric_shares(day_values, edges) * day_values.size
        rest = total - day_counts
        by_day["psi"].append(psi(rest / rest.sum(), day_counts / day_values.size) if rest.sum() > 0 else None)
        rest_sample = np.sort(sample[sample_days != code])
        present = np.sort(ks_subset.take(day_values[~np.isnan(day_values)]))
        both = bool(rest_sample.size and present.size)
        by_day["ks"].append(ks_statistic(rest_sample, present) if both else None)
        by_day["wasserstein"].append(normalised_wasserstein(reference, rest_sample, present) if both else None)
    return by_day


def _multivariate(spec: Spec, frame: pd.DataFrame, features: Mapping[str, Mapping[str, Any]],
                  days: _Days | None) -> tuple[dict[str, Any] | None, list[float | None] | None]:
    """The multivariate entry of the numeric features and (with `days`) each day's statistic against the
    others; (None, None) with fewer than two non-constant numeric features."""
    numeric = [f.name for f in spec.features if f.type == "numeric"]
    columns = {name: numeric_values(frame[name], name) for name in numeric}
    fitted = multivariate.multivariate_entry(columns, {n: features[n]["mean"] for n in numeric},
                                             {n: features[n]["std"] for n in numeric})
    if fitted is None:
        return None, None
    entry, z = fitted
    if days is None:
        return entry, None
    return entry, multivariate.per_day_ratios(entry, z, days.codes, len(days.labels))


def _categorical_calibration(
    name: str, reference: Mapping[str, Any], values: pd.Series, days: _Days, spec: Spec
) -> ByDay:
    """PSI and JS distance of each reference day against the rest of the reference, in day order."""
    total = category_counts(values)
    listed = [category for category in reference["frequencies"] if category != OTHER]
    by_day: ByDay = {"psi": [], "js": []}
    for code in range(len(days.labels)):
        day_counts = category_counts(values.iloc[np.flatnonzero(days.codes == code)])
        rest = {category: count - day_counts.get(category, 0) for category, count in total.items()}
        rest_total = sum(rest.values())
        if rest_total <= 0:
            by_day["psi"].append(None)
            by_day["js"].append(None)
            continue
        frequencies = {category: rest.get(category, 0) / rest_total for category in listed}
        if OTHER in reference["frequencies"]:
            frequencies[OTHER] = sum(n for category, n in rest.items() if category not in frequencies) / rest_total
        rows = categorical_rows(name, {"frequencies": frequencies, "count": rest_total}, day_counts,
                                fixed_thresholds(spec))
        by_day["psi"].append(rows[0].value)
        by_day["js"].append(rows[1].value)
    return by_day


def _class_profile(spec: Spec, predictions: ClassScores, sampling: _Sampling
                   ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A multiclass model's "classes" entry (the predicted-class mix and each class's probability profile),
    and the positions of each class's sampled values (for calibration)."""
    if len(predictions.predicted) == 0:
        raise DriftInputError("reference scores are empty: cannot profile the predicted classes")
    entry: dict[str, Any] = {"names": list(predictions.classes),
                             "predicted": _categorical_profile(pd.Series(predictions.predicted, dtype=object),
                                                               sampling.max_categories),
                             "scores": {}}
    positions: dict[str, np.ndarray] = {}
    for index, name in enumerate(predictions.classes):
        rng = np.random.default_rng([sampling.seed, len(spec.features), 2, index])
        values = np.where(np.isfinite(predictions.probabilities[:, index]), predictions.probabilities[:, index],
                          np.nan)
        entry["scores"][name], positions[name] = _numeric_profile(values, class_feature(name), spec.drift.bins,
                                                                  sampling.sample_size, rng)
    return entry, positions


def _class_calibration(spec: Spec, entry: Mapping[str, Any], predictions: ClassScores,
                       positions: Mapping[str, np.ndarray], days: _Days, sampling: _Sampling) -> dict[str, ByDay]:
    """The predicted-class mix's PSI and JS and each class probability's PSI, KS and Wasserstein of each holdout
    day against the rest of the holdout, in day order."""
    by_feature = {PREDICTED_CLASS: _categorical_calibration(
        PREDICTED_CLASS, entry["predicted"], pd.Series(predictions.predicted, dtype=object), days, spec)}
    for index, name in enumerate(predictions.classes):
        subset = KsSubset(sampling.ks_max_values, np.random.default_rng([sampling.seed, len(spec.features), 3, index]))
        values = np.where(np.isfinite(predictions.probabilities[:, index]), predictions.probabilities[:, index],
                          np.nan)
        by_feature[class_feature(name)] = _numeric_calibration(entry["scores"][name], values, positions[name], days,
                                                               subset)
    return by_feature

"""Label-free performance estimates of binary models (confidence-based, as NannyML's CBPE), pure functions.

At training a calibration map of the scores is fitted on the holdout (isotonic regression of the label on
the score) and stored with the version's reference profile. On a day without labels, each row's calibrated
score q is the probability that its label is 1, so the expected confusion matrix at the decision threshold
is: TP = sum of q over predicted positives, FP = sum of 1 - q over them, FN and TN likewise over predicted
negatives. Expected accuracy follows, and the expected ROC curve is drawn with q and 1 - q as the weights of
the positives and negatives ranked by the raw score.

**Degenerate days.** Estimates read the scores only, so a feature with no values or a constant one changes
them only through the scores. When the scores are constant they rank nothing: the expected ROC AUC is 0.5 by
construction; when no row is expected positive (or none negative) it is undefined (NaN, stored as null).
Each case is said in the estimate's `notes`, next to the number.

**Assumption: no concept drift.** The estimate holds while P(label | score) is what it was on the holdout:
a covariate shift (new rows in other score regions) moves it correctly, a change in how the features relate
to the label does not show until the labels arrive. Whether a day visibly breaks the assumption (features
out of support, scores outside the map's range, an expected positive rate far from the holdout's) is
`ml_batch.monitoring.reliability`'s rule; regression models' estimate is `ml_batch.monitoring.loss_estimate`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ml_batch.monitoring.inputs import EstimateInputError
from ml_batch.monitoring.loss_estimate import fit_loss_model
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

ASSUMPTION = "no concept drift: P(label | score) is as on the training holdout the calibration map was fitted on"
ESTIMATED_PREFIX = "estimated_"
"""Prefix of the metric names of estimates in the `performance` table (e.g. `estimated_roc_auc`)."""
ESTIMATED_METRICS = ("roc_auc", "accuracy")
MULTICLASS_UNAVAILABLE = ("no label-free estimate for multiclass models: nothing fitted on the holdout transports "
                          "their class probabilities to a day without labels yet (a one-vs-rest calibration would), "
                          "so their performance is known once the labels arrive")
"""Why a multiclass model's label-free estimate is unavailable (stored and shown, never a silent NaN)."""


def fit_estimators(spec: Spec, holdout: pd.DataFrame, scores: np.ndarray, labels: np.ndarray, *,
                   days: np.ndarray | None = None) -> dict[str, Any]:
    """What a version's label-free estimates need, fitted on its holdout at registration and stored in its
    reference profile: a binary model's score calibration map (`score_calibration`, with the holdout's
    positive rate, each holdout day's expected positive rate and the score range the reliability of an
    estimate is judged against); a regression model's loss model (`loss_model`,
    `ml_batch.monitoring.loss_estimate`), unless its holdout is too small.

    Args:
        spec: The model spec.
        holdout: The holdout's feature frame (a column per feature).
        scores: The model's scores (binary) or predictions (regression) on the holdout.
        labels: The holdout's labels.
        days: Each holdout row's event day (None: no per-day rates are stored).

    A multiclass model gets nothing (`MULTICLASS_UNAVAILABLE` says why).
    """
    if spec.model.task == "multiclass":
        return {}
    if spec.model.task == "binary":
        calibration = fit_score_calibration(scores, labels)
        if days is not None:
            calibration["day_expected_positive_rates"] = day_expected_rates(calibration, scores, days)
        return {"score_calibration": calibration}
    loss_model = fit_loss_model(scores, labels)
    if loss_model is None:
        logger.info("%s: holdout of %d rows is too small for a loss model: no label-free estimate", spec.name,
                    len(holdout))
        return {}
    return {"loss_model": loss_model}


def fit_score_calibration(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """An isotonic calibration map of binary scores, as a JSON-serialisable dict.

    Args:
        scores: The model's scores (P(class 1)) on the holdout.
        labels: The holdout's 0/1 labels.

    Returns:
        {"method": "isotonic", "x": [...], "y": [...], "n": rows, "positive_rate": the labels' mean}: a
        calibrated score is the linear interpolation of y at the score over x, clipped to the ends (what
        `IsotonicRegression` predicts). x runs from the lowest holdout score to the highest.

    Raises:
        EstimateInputError: If the inputs are empty, of different lengths, or the labels are not 0/1.
    """
    from sklearn.isotonic import IsotonicRegression

    x = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel()
    if x.size == 0 or x.size != y.size:
        raise EstimateInputError(f"need as many labels as scores (at least one), got {x.size} scores, {y.size} labels")
    if not np.all(np.isfinite(x)):
        raise EstimateInputError("scores hold NaN or infinite values: cannot fit a calibration map")
    if not np.isin(y, (0, 1)).all():
        raise EstimateInputError(f"labels must be 0/1, got {sorted(set(np.unique(y).tolist()))[:5]}")
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, y.astype(np.float64))
    return {"method": "isotonic", "x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist(),
            "n": int(x.size), "positive_rate": float(y.mean())}


def day_expected_rates(calibration: Mapping[str, Any], scores: np.ndarray, days: np.ndarray) -> list[float]:
    """Each holdout day's expected positive rate (the mean calibrated score of its rows), in day order: how far
    an ordinary day's rate strays from the pooled holdout's, which on a source whose days differ (the weather
    of the day) is much further than sampling noise."""
    values = np.asarray(scores, dtype=np.float64).ravel()
    by_day = pd.Series(calibrate(calibration, values)).groupby(np.asarray(days).ravel(), sort=True).mean()
    return [float(rate) for rate in by_day.to_numpy()]


def fitted_range(calibration: Mapping[str, Any]) -> tuple[float, float]:
    """The (min, max) of the holdout scores a calibration map was fitted on: its first and last x (isotonic
    regression keeps both ends), so maps stored before the range was named have it too."""
    x = calibration["x"]
    return float(x[0]), float(x[-1])


def calibrate(calibration: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated scores (estimated P(label = 1)) through a map from `fit_score_calibration`."""
    if calibration.get("method") != "isotonic":
        raise EstimateInputError(f"calibration method {calibration.get('method')!r} is not supported: expected "
                                 "'isotonic'")
    x = np.asarray(calibration["x"], dtype=np.float64)
    y = np.asarray(calibration["y"], dtype=np.float64)
    if x.size == 0 or x.size != y.size:
        raise EstimateInputError(f"calibration map has {x.size} x and {y.size} y points: expected as many, >= 1")
    return np.clip(np.interp(np.asarray(scores, dtype=np.float64), x, y), 0.0, 1.0)


def estimate_binary(scores: np.ndarray, probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """Expected confusion matrix at `threshold`, accuracy and ROC AUC of one day, without labels.

    Args:
        scores: The raw scores (they decide the predicted label, `score >= threshold`, and the ranking).
        probabilities: The calibrated scores: each row's probability of label 1.
        threshold: `predictions.threshold`.

    Returns:
        {"roc_auc", "accuracy", "confusion": {"tp", "fp", "fn", "tn"}, "expected_positive_rate", "n",
        "notes"}; roc_auc is NaN when the expected positives or negatives are 0, and `notes` says why a
        number says little or nothing (constant scores, an undefined ROC AUC).

    Raises:
        EstimateInputError: If the arrays are empty, misaligned or hold NaN.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    q = np.asarray(probabilities, dtype=np.float64).ravel()
    if s.size == 0 or s.size != q.size:
        raise EstimateInputError(f"need one probability per score (at least one), got {s.size} and {q.size}")
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(q))):
        raise EstimateInputError("scores or probabilities hold NaN or infinite values")
    predicted = s >= threshold
    tp, fp = float(q[predicted].sum()), float((1 - q)[predicted].sum())
    fn, tn = float(q[~predicted].sum()), float((1 - q)[~predicted].sum())
    # Expected ROC: rank by score (ties grouped), positives weighted q, negatives 1 - q.
    order = np.argsort(-s, kind="stable")
    ranked, weights = s[order], q[order]
    group_ends = np.r_[ranked[1:] != ranked[:-1], True]
    true_pos = np.cumsum(weights)[group_ends]
    false_pos = np.cumsum(1 - weights)[group_ends]
    if true_pos[-1] <= 0 or false_pos[-1] <= 0:
        auc = float("nan")
    else:
        tpr = np.r_[0.0, true_pos / true_pos[-1]]
        fpr = np.r_[0.0, false_pos / false_pos[-1]]
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return {"roc_auc": auc, "accuracy": (tp + tn) / s.size,
            "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
            "expected_positive_rate": float(q.mean()), "n": int(s.size), "notes": _notes(s, auc)}


def _notes(scores: np.ndarray, auc: float) -> list[str]:
    """What makes a day's estimate say little: constant scores, an undefined ROC AUC."""
    notes = []
    if scores.min() == scores.max():
        notes.append(f"every score is {scores[0]:.4g}: the scores rank nothing, so the expected ROC AUC is 0.5 "
                     "by construction")
    if np.isnan(auc):
        notes.append("no row is expected positive, or none negative: the expected ROC AUC is undefined")
    return notes

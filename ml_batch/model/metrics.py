"""Evaluation metrics for the tasks ml-batch supports (pure functions)."""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "average_precision": True,
    "accuracy": True,
    "r2": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
}


def evaluate(task: str, y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Holdout metrics: for `binary`, `y_score` is P(class 1); for `regression`, the predicted value.

    Metrics that are undefined on the data (ROC AUC with one class) are NaN, never made up.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if len(y_true) == 0:
        raise ValueError("cannot evaluate on an empty set")
    if task == "binary":
        labels = y_true.astype(np.int64)
        both_classes = len(np.unique(labels)) == 2
        clipped = np.clip(y_score, 1e-15, 1 - 1e-15)
        return {
            "roc_auc": float(skm.roc_auc_score(labels, y_score)) if both_classes else math.nan,
            "average_precision": float(skm.average_precision_score(labels, y_score)) if both_classes else math.nan,
            "log_loss": float(skm.log_loss(labels, clipped, labels=[0, 1])),
            "accuracy": float(skm.accuracy_score(labels, (y_score >= threshold).astype(np.int64))),
            "brier": float(skm.brier_score_loss(labels, y_score)),
            "positive_rate": float(labels.mean()),
            "mean_score": float(y_score.mean()),
            "n": float(len(labels)),
        }
    if task == "regression":
        return {
            "rmse": float(math.sqrt(skm.mean_squared_error(y_true, y_score))),
            "mae": float(skm.mean_absolute_error(y_true, y_score)),
            "r2": float(skm.r2_score(y_true, y_score)) if len(y_true) > 1 else math.nan,
            "mean_score": float(y_score.mean()),
            "n": float(len(y_true)),
        }
    raise ValueError(f"unknown task {task!r}: expected 'binary' or 'regression'")


def is_better(metric: str, candidate: float, reference: float, min_improvement: float = 0.0) -> bool:
    """True when `candidate` beats `reference` on `metric` by at least `min_improvement`."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(HIGHER_IS_BETTER)}")
    if math.isnan(candidate):
        return False
    if math.isnan(reference):
        return True
    if HIGHER_IS_BETTER[metric]:
        return candidate >= reference + min_improvement
    return candidate <= reference - min_improvement


def meets_floor(metric: str, value: float, floor: float | None) -> bool:
    """True when `value` is on the right side of the spec's absolute floor (or there is no floor)."""
    if floor is None:
        return not math.isnan(value)
    if math.isnan(value):
        return False
    return value >= floor if HIGHER_IS_BETTER[metric] else value <= floor



def floor_name(metric: str) -> str:
    """What `training.min_score` is for `metric`: a "floor" where higher is better, a "ceiling" where lower is."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}: expected one of {sorted(HIGHER_IS_BETTER)}")
    return "floor" if HIGHER_IS_BETTER[metric] else "ceiling"


def floor_phrase(metric: str, floor: float) -> str:
    """How a value on the wrong side of the spec's floor is said, in the metric's direction: "below the floor
    0.7" where higher is better (roc_auc, accuracy, r2), "above the ceiling 30.0" where lower is better (mae,
    rmse, log_loss)."""
    side = "below" if HIGHER_IS_BETTER.get(metric) else "above"
    return f"{side} the {floor_name(metric)} {floor}"

"""Evaluation metrics for the tasks ml-batch supports (pure functions).

Which metric may gate which task is `ml_batch.tasks`' rule; each metric's direction is `HIGHER_IS_BETTER`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm

from ml_batch.tasks import TASK_METRICS

HIGHER_IS_BETTER = {
    "roc_auc": True,
    "average_precision": True,
    "accuracy": True,
    "r2": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "macro_f1": True,
    "roc_auc_ovr": True,
    "balanced_accuracy": True,
}
assert {m for names in TASK_METRICS.values() for m in names} == set(HIGHER_IS_BETTER), "a metric without a direction"
# The smallest probability a log loss takes the log of: a class a model gives 0 costs -log(1e-15) ~ 34.5.
_EPS = 1e-15


def evaluate(task: str, y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5, *,
             classes: Sequence[str] | None = None) -> dict[str, float]:
    """Holdout metrics: for `binary`, `y_score` is P(class 1); for `regression`, the predicted value; for
    `multiclass`, the (n, k) probabilities of `classes` (required for it, ignored otherwise), see
    `evaluate_multiclass`.

    Metrics that are undefined on the data (ROC AUC with one class) are NaN, never made up.
    """
    if task == "multiclass":
        if classes is None:
            raise ValueError("a multiclass evaluation needs the class names of the score columns (classes=...)")
        return evaluate_multiclass(y_true, y_score, classes)
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
    raise ValueError(f"unknown task {task!r}: expected one of {sorted(TASK_METRICS)}")


def evaluate_multiclass(y_true: np.ndarray, y_score: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Multiclass metrics of class-name labels `y_true` and the (n, k) probabilities `y_score` of `classes`.

    A row whose label is not one of `classes` (a class the model never saw) is left out of every metric and
    counted in `n_unseen`; `n` counts the rows evaluated. The predicted class is the most probable one (the
    first of `classes` on a tie, numpy's argmax). log_loss takes probabilities below 1e-15 as 1e-15.
    roc_auc_ovr is the unweighted mean over the classes present in the rows of each class's one-vs-rest ROC
    AUC (scikit-learn's `multi_class="ovr"` when every class is present), NaN with fewer than 2 present;
    macro_f1 averages over the classes present or predicted (scikit-learn's default), a class never predicted
    scoring 0.

    Raises:
        ValueError: no rows, `y_score` is not (n, len(classes)), or `classes` repeats a name.
    """
    names = [str(c) for c in classes]
    labels = np.asarray([str(v) for v in np.asarray(y_true, dtype=object)], dtype=object)
    scores = np.asarray(y_score, dtype=np.float64)
    if len(labels) == 0:
        raise ValueError("cannot evaluate on an empty set")
    if len(set(names)) != len(names) or scores.shape != (len(labels), len(names)):
        raise ValueError(f"multiclass scores of shape {scores.shape} for {len(labels)} labels and classes {names}: "
                         f"expected shape ({len(labels)}, {len(names)}) and distinct class names")
    seen = np.isin(labels, np.asarray(names, dtype=object))
    labels, scores = labels[seen], scores[seen]
    n_unseen = float((~seen).sum())
    if len(labels) == 0:
        undefined = dict.fromkeys(TASK_METRICS["multiclass"], math.nan)
        return {**undefined, "n": 0.0, "n_unseen": n_unseen}
    index = {name: i for i, name in enumerate(names)}
    true_index = np.array([index[label] for label in labels])
    predicted = np.asarray(names, dtype=object)[scores.argmax(axis=1)]
    with warnings.catch_warnings():  # a class never predicted, or predicted but absent: scored 0, said above
        warnings.simplefilter("ignore")
        macro_f1 = float(skm.f1_score(labels, predicted, average="macro", zero_division=0))
        balanced = float(skm.balanced_accuracy_score(labels, predicted))
    return {
        "log_loss": float(-np.log(np.clip(scores[np.arange(len(labels)), true_index], _EPS, 1.0)).mean()),
        "accuracy": float((true_index == scores.argmax(axis=1)).mean()),
        "macro_f1": macro_f1,
        "roc_auc_ovr": _roc_auc_ovr(true_index, scores),
        "balanced_accuracy": balanced,
        "n": float(len(labels)),
        "n_unseen": n_unseen,
    }


def _roc_auc_ovr(true_index: np.ndarray, scores: np.ndarray) -> float:
    present = np.unique(true_index)
    if len(present) < 2:
        return math.nan
    return float(np.mean([skm.roc_auc_score(true_index == j, scores[:, j]) for j in present]))


def align_scores(scores: np.ndarray, own: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """(n, len(own)) probabilities of classes `own` as columns of `classes` (a superset): a class the model
    does not know gets probability 0, so each row still sums to what it did (pure).

    Raises:
        ValueError: `classes` lacks one of `own` (its probability would be lost).
    """
    missing = sorted(set(own) - set(classes))
    if missing:
        raise ValueError(f"classes {list(classes)} lack the model's classes {missing}: expected a superset of "
                         f"{list(own)}")
    aligned = np.zeros((len(scores), len(classes)), dtype=np.float64)
    position = {name: i for i, name in enumerate(classes)}
    for j, name in enumerate(own):
        aligned[:, position[name]] = scores[:, j]
    return aligned


def shared_class_scores(metric: str, labels: np.ndarray, candidate: tuple[np.ndarray, Sequence[str]],
                        champion: tuple[np.ndarray, Sequence[str]]) -> tuple[float, float]:
    """`metric` of two multiclass models (a candidate and the champion; a challenger and the champion) on the
    same rows, over the union of their classes (pure): the one rule of comparing them, for the gate
    (`ml_batch.promotion.retrain`) and the shadow days (`ml_batch.monitoring.performance`).

    Each model's (n, k) probabilities are widened onto the union, a class it does not know getting probability
    0: a holdout row of a class only one model knows counts against the other (its log loss is that of
    probability 1e-15, and it is never predicted), rather than being left out for one model and kept for the
    other. A row of a class neither knows is left out of both (it is in `n_unseen`). With the same classes this
    is each model's own evaluation.

    Args:
        metric: The spec's `training.metric` (a multiclass one).
        labels: The rows' class names (`training.labels_of`).
        candidate: The candidate's scores of those rows and its class names (`training.class_names`).
        champion: The champion's, likewise.

    Returns:
        (candidate's value, champion's value); NaN where the metric is undefined on the rows.
    """
    union = class_union(candidate[1], champion[1])
    values = [on_classes(labels, scores, classes, union)[metric] for scores, classes in (candidate, champion)]
    return values[0], values[1]


def class_union(*class_sets: Sequence[str]) -> list[str]:
    """The classes of several multiclass models, in one order: what two of them are compared over."""
    return sorted(set().union(*class_sets))


def on_classes(labels: np.ndarray, scores: np.ndarray, own: Sequence[str], union: Sequence[str]) -> dict[str, float]:
    """The multiclass metrics of a model's (n, len(own)) probabilities over the classes `union` (a superset of
    `own`; `class_union`): a class it does not know has probability 0, so its rows count against it (pure)."""
    return evaluate("multiclass", labels, align_scores(scores, own, union), classes=union)


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

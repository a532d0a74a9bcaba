"""The metrics each model task is gated on (`training.metric`), and what a spec of each task may say.

Their directions (higher or lower is better) are `ml_batch.model.metrics.HIGHER_IS_BETTER`'s; this module
imports nothing heavy, since every spec load checks a spec's training section against its task.
"""

from __future__ import annotations

from typing import Any, Literal

Metric = Literal["roc_auc", "average_precision", "log_loss", "accuracy", "rmse", "mae", "r2", "macro_f1",
                 "roc_auc_ovr", "balanced_accuracy"]
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "average_precision", "log_loss", "accuracy"),
    "regression": ("rmse", "mae", "r2"),
    "multiclass": ("log_loss", "accuracy", "macro_f1", "roc_auc_ovr", "balanced_accuracy"),
}
# The task whose versions have a class set (`model_versions.classes`) and whose rows carry `class_scores`.
MULTICLASS = "multiclass"
# What a multiclass spec is gated on when it names no metric (roc_auc, the spec's default, is binary's).
MULTICLASS_DEFAULT_METRIC = "log_loss"


def with_task_default_metric(data: Any) -> Any:
    """A raw spec mapping with `training.metric` set to log_loss when it is multiclass and names none.

    Anything else (another task, a metric given, not a mapping) is returned as it is, for validation to judge.
    """
    if not isinstance(data, dict):
        return data
    model, training = data.get("model"), data.get("training", {})
    task = model.get("task") if isinstance(model, dict) else getattr(model, "task", None)
    if task == "multiclass" and isinstance(training, dict) and "metric" not in training:
        return {**data, "training": {**training, "metric": MULTICLASS_DEFAULT_METRIC}}
    return data


def task_problem(task: str, metric: str) -> str | None:
    """Why a `task` model cannot be gated on `metric`, or None when it can.

    A multiclass model takes only the multiclass metrics. A binary or regression model is refused only the
    metrics that exist for multiclass models alone (macro_f1, roc_auc_ovr, balanced_accuracy), so specs written
    before multiclass models load as they did.
    """
    only_multiclass = set(TASK_METRICS["multiclass"]) - set(TASK_METRICS["binary"])
    if metric not in TASK_METRICS[task] and (task == "multiclass" or metric in only_multiclass):
        return f"training.metric {metric!r} is not a {task} metric: expected one of {list(TASK_METRICS[task])}"
    return None

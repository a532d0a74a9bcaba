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
# What a spec is gated on when it names no `training.metric`: one of its task's own metrics.
DEFAULT_METRIC: dict[str, str] = {"binary": "roc_auc", "regression": "rmse", "multiclass": "log_loss"}
DEFAULT_TASK = "binary"


def with_task_default_metric(data: Any) -> Any:
    """A raw spec mapping with `training.metric` set to its task's `DEFAULT_METRIC` when it names none.

    Anything else (a metric given, an unknown task, not a mapping) is returned as it is, for validation to judge.
    """
    if not isinstance(data, dict):
        return data
    model, training = data.get("model"), data.get("training", {})
    task = model.get("task", DEFAULT_TASK) if isinstance(model, dict) else getattr(model, "task", DEFAULT_TASK)
    if task in DEFAULT_METRIC and isinstance(training, dict) and "metric" not in training:
        return {**data, "training": {**training, "metric": DEFAULT_METRIC[task]}}
    return data


def task_problem(task: str, metric: str) -> str | None:
    """Why a `task` model cannot be gated on `metric` (a metric its models never have), or None when it can.

    A metric of another task is undefined (NaN) on every holdout of this one: the gate could never promote.
    """
    if metric not in TASK_METRICS[task]:
        return f"training.metric {metric!r} is not a {task} metric: expected one of {list(TASK_METRICS[task])}"
    return None

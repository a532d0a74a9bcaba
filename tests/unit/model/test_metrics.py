"""Evaluation metrics (`ml_batch.model.metrics`): sklearn's numbers, undefined ones NaN, each metric's direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_batch.model.metrics import evaluate, floor_phrase, is_better, meets_floor


def test_binary_metrics_match_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    m = evaluate("binary", y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["n"] == 6


def test_single_class_auc_is_nan_not_invented() -> None:
    m = evaluate("binary", np.array([0, 0, 0]), np.array([0.1, 0.2, 0.3]))
    assert math.isnan(m["roc_auc"])
    assert m["log_loss"] > 0


def test_regression_metrics() -> None:
    m = evaluate("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert m["mae"] == pytest.approx(2 / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(4 / 3))


def test_unknown_task_and_metric_are_named() -> None:
    with pytest.raises(ValueError, match="unknown task 'ranking'"):
        evaluate("ranking", np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        is_better("f1", 0.5, 0.4)


def test_direction_of_metrics() -> None:
    assert is_better("roc_auc", 0.80, 0.79, 0.005)
    assert not is_better("roc_auc", 0.794, 0.79, 0.005)
    assert is_better("log_loss", 0.30, 0.40, 0.05)
    assert not is_better("log_loss", 0.38, 0.40, 0.05)
    assert meets_floor("rmse", 1.0, 2.0) and not meets_floor("rmse", 3.0, 2.0)
    assert not meets_floor("roc_auc", float("nan"), None)


@pytest.mark.parametrize(("metric", "phrase"), [
    ("roc_auc", "below the floor 0.7"), ("accuracy", "below the floor 0.7"), ("r2", "below the floor 0.7"),
    ("mae", "above the ceiling 0.7"), ("rmse", "above the ceiling 0.7"), ("log_loss", "above the ceiling 0.7"),
])
def test_a_missed_floor_is_said_in_the_metrics_direction(metric: str, phrase: str) -> None:
    assert floor_phrase(metric, 0.7) == phrase


def test_the_floor_phrase_of_an_unknown_metric_names_it() -> None:
    with pytest.raises(ValueError, match="unknown metric 'f1': expected one of"):
        floor_phrase("f1", 0.5)

"""Evaluation metrics (`ml_batch.model.metrics`): sklearn's numbers, undefined ones NaN, each metric's direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml_batch.model.metrics import evaluate, floor_phrase, is_better, meets_floor, shared_class_scores


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


# -- multiclass ---------------------------------------------------------------------------------------------
_CLASSES = ["a", "b", "c", "d"]


def _multiclass_case(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.asarray(_CLASSES, dtype=object)[rng.integers(0, 4, n)]
    scores = rng.dirichlet([1, 1, 1, 1], size=n)
    return labels, scores


def test_multiclass_metrics_match_sklearn() -> None:
    from sklearn import metrics as skm

    y, p = _multiclass_case()
    predicted = np.asarray(_CLASSES, dtype=object)[p.argmax(axis=1)]
    m = evaluate("multiclass", y, p, classes=_CLASSES)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=_CLASSES))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert m["roc_auc_ovr"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", labels=_CLASSES))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, predicted))
    assert (m["n"], m["n_unseen"]) == (300, 0)


def test_multiclass_rows_of_an_unseen_class_are_counted_and_left_out() -> None:
    y, p = _multiclass_case()
    seen = evaluate("multiclass", y, p, classes=_CLASSES)
    y_new = np.concatenate([y, np.asarray(["e", "e"], dtype=object)])
    p_new = np.vstack([p, [[0.25] * 4, [0.25] * 4]])
    m = evaluate("multiclass", y_new, p_new, classes=_CLASSES)
    assert (m["n"], m["n_unseen"]) == (300, 2)
    assert m["log_loss"] == pytest.approx(seen["log_loss"])
    only_unseen = evaluate("multiclass", np.asarray(["e"], dtype=object), np.array([[0.25] * 4]), classes=_CLASSES)
    assert (only_unseen["n"], only_unseen["n_unseen"]) == (0, 1) and math.isnan(only_unseen["log_loss"])


def test_multiclass_integer_labels_are_class_names_and_undefined_metrics_are_nan() -> None:
    m = evaluate("multiclass", np.array([1, 1, 1]), np.array([[0.1, 0.9], [0.2, 0.8], [0.6, 0.4]]), classes=["0", "1"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert math.isnan(m["roc_auc_ovr"])  # one class present
    assert m["log_loss"] == pytest.approx(-np.log([0.9, 0.8, 0.4]).mean())


def test_multiclass_needs_its_classes_and_scores_of_their_shape() -> None:
    y, p = _multiclass_case(10)
    with pytest.raises(ValueError, match=r"needs the class names"):
        evaluate("multiclass", y, p)
    with pytest.raises(ValueError, match=r"shape \(10, 4\) for 10 labels and classes \['a', 'b', 'c'\]"):
        evaluate("multiclass", y, p, classes=["a", "b", "c"])


def test_multiclass_metrics_have_directions_for_the_gate_and_the_floor() -> None:
    assert is_better("macro_f1", 0.8, 0.7) and is_better("balanced_accuracy", 0.8, 0.7)
    assert is_better("roc_auc_ovr", 0.9, 0.8, 0.05) and not is_better("roc_auc_ovr", 0.82, 0.8, 0.05)
    assert meets_floor("macro_f1", 0.6, 0.5) and not meets_floor("macro_f1", 0.4, 0.5)
    assert floor_phrase("balanced_accuracy", 0.5) == "below the floor 0.5"


def test_align_scores_puts_a_models_classes_into_a_wider_set_with_probability_zero() -> None:
    from ml_batch.model.metrics import align_scores

    aligned = align_scores(np.array([[0.3, 0.7]]), ["b", "d"], _CLASSES)
    assert aligned.tolist() == [[0.0, 0.3, 0.0, 0.7]]
    with pytest.raises(ValueError, match=r"lack the model's classes \['e'\]"):
        align_scores(np.array([[1.0]]), ["e"], _CLASSES)


def test_multiclass_models_with_other_classes_are_judged_on_the_same_rows_and_the_union() -> None:
    labels = np.asarray(["a", "b", "c", "c"], dtype=object)
    candidate = (np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.2, 0.2, 0.6]]), ["a", "b", "c"])
    champion = (np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5], [0.5, 0.5]]), ["a", "b"])  # never saw 'c'
    cand, champ = shared_class_scores("log_loss", labels, candidate, champion)
    assert cand == pytest.approx(-np.log([0.8, 0.8, 0.8, 0.6]).mean())
    assert champ == pytest.approx(-np.log([0.9, 0.8, 1e-15, 1e-15]).mean())  # 'c' rows count against it
    assert is_better("log_loss", cand, champ)
    accuracy = shared_class_scores("accuracy", labels, candidate, champion)
    assert accuracy == (1.0, 0.5)

"""Label-free performance estimates (`ml_batch.monitoring.estimate`, CBPE-style): the expected confusion matrix,
accuracy and ROC AUC."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from ml_batch.monitoring.estimate import EstimateInputError, calibrate, estimate_binary, fit_score_calibration


def test_with_the_labels_as_probabilities_the_estimate_is_the_realized_metric() -> None:
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(5000), 2)  # ties included
    labels = (rng.random(5000) < scores).astype(np.int64)
    estimate = estimate_binary(scores, labels.astype(np.float64), threshold=0.4)
    assert estimate["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert estimate["accuracy"] == pytest.approx(accuracy_score(labels, scores >= 0.4), abs=1e-12)
    confusion = estimate["confusion"]
    assert confusion["tp"] == ((scores >= 0.4) & (labels == 1)).sum()
    assert sum(confusion.values()) == pytest.approx(5000)


def test_calibrated_scores_estimate_the_metrics_of_unseen_labels() -> None:
    rng = np.random.default_rng(2)
    raw = rng.beta(2, 6, 40_000)
    truth = np.clip(raw * 1.6, 0, 1)  # the model's scores are miscalibrated: the true risk is 1.6x
    holdout_labels = (rng.random(20_000) < truth[:20_000]).astype(np.int64)
    calibration = fit_score_calibration(raw[:20_000], holdout_labels)
    day_scores = raw[20_000:]
    day_labels = (rng.random(20_000) < truth[20_000:]).astype(np.int64)
    estimate = estimate_binary(day_scores, calibrate(calibration, day_scores), threshold=0.3)
    assert estimate["roc_auc"] == pytest.approx(roc_auc_score(day_labels, day_scores), abs=0.01)
    assert estimate["accuracy"] == pytest.approx(accuracy_score(day_labels, day_scores >= 0.3), abs=0.01)
    assert estimate["expected_positive_rate"] == pytest.approx(day_labels.mean(), abs=0.01)


def test_bad_inputs_name_what_is_wrong() -> None:
    with pytest.raises(EstimateInputError, match="need one probability per score"):
        estimate_binary(np.array([0.1, 0.2]), np.array([0.5]), 0.5)
    with pytest.raises(EstimateInputError, match="labels must be 0/1, got \\[0, 2\\]"):
        fit_score_calibration(np.array([0.1, 0.2]), np.array([0, 2]))
    with pytest.raises(EstimateInputError, match="calibration method 'platt' is not supported"):
        calibrate({"method": "platt"}, np.array([0.1]))
    assert np.isnan(estimate_binary(np.array([0.1, 0.9]), np.array([0.0, 0.0]), 0.5)["roc_auc"])


def test_constant_scores_give_a_defined_estimate_that_says_it_ranks_nothing() -> None:
    scores = np.full(200, 0.3)
    estimate = estimate_binary(scores, np.full(200, 0.4), threshold=0.5)
    assert estimate["roc_auc"] == 0.5 and estimate["accuracy"] == pytest.approx(0.6)
    assert estimate["notes"] == ["every score is 0.3: the scores rank nothing, so the expected ROC AUC is 0.5 by "
                                 "construction"]
    assert estimate_binary(np.array([0.1, 0.9]), np.array([0.2, 0.7]), 0.5)["notes"] == []


def test_an_undefined_roc_auc_is_said_in_the_notes() -> None:
    estimate = estimate_binary(np.array([0.1, 0.9]), np.array([0.0, 0.0]), 0.5)
    assert np.isnan(estimate["roc_auc"]) and estimate["accuracy"] == 0.5
    assert estimate["notes"] == ["no row is expected positive, or none negative: the expected ROC AUC is undefined"]

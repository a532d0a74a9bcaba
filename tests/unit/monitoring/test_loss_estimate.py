"""Label-free MAE and RMSE of regression predictions (`ml_batch.monitoring.loss_estimate`, DLE-style)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml_batch.monitoring.estimate import EstimateInputError
from ml_batch.monitoring.loss_estimate import MIN_HOLDOUT_ROWS, estimate_loss, fit_loss_model


def _rows(rng: np.random.Generator, n: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and targets whose error grows with the prediction (multiplicative noise, like demand)."""
    predictions = rng.uniform(low, high, n)
    return predictions, predictions * rng.lognormal(0, 0.2, n)


def test_the_estimate_follows_rows_moving_to_where_the_model_errs_more() -> None:
    rng = np.random.default_rng(3)
    model = fit_loss_model(*_rows(rng, 5000, 10, 200))
    assert model is not None
    json.dumps(model, allow_nan=False)
    for low, high in ((10, 200), (10, 60), (150, 200)):  # the whole range, its low end, its high end
        predictions, targets = _rows(rng, 3000, low, high)
        estimate = estimate_loss(model, predictions)
        realized_mae = np.abs(targets - predictions).mean()
        realized_rmse = np.sqrt(((targets - predictions) ** 2).mean())
        assert estimate["mae"] == pytest.approx(realized_mae, rel=0.08)
        assert estimate["rmse"] == pytest.approx(realized_rmse, rel=0.1)
        assert estimate["n"] == 3000 and estimate["notes"] == []
    # the holdout's overall MAE is far off on the high end, which the binned model follows
    low_end, high_end = (estimate_loss(model, _rows(rng, 3000, a, b)[0])["mae"] for a, b in ((10, 40), (150, 200)))
    assert high_end > 4 * low_end


def test_a_holdout_too_small_gets_no_loss_model() -> None:
    rng = np.random.default_rng(4)
    assert fit_loss_model(*_rows(rng, MIN_HOLDOUT_ROWS - 1, 1, 2)) is None
    assert fit_loss_model(*_rows(rng, MIN_HOLDOUT_ROWS, 1, 2)) is not None


def test_tied_predictions_leave_no_bin_without_a_loss() -> None:
    predictions = np.r_[np.full(300, 5.0), np.linspace(6, 9, 100)]
    model = fit_loss_model(predictions, predictions + 1.0)
    assert model is not None and all(v == pytest.approx(1.0) for v in model["mae"])
    estimate = estimate_loss(model, np.full(10, 5.0))
    assert estimate["mae"] == pytest.approx(1.0)
    assert estimate["notes"] == ["every prediction is 5: the estimate is one bin's holdout loss"]


def test_bad_inputs_name_what_is_wrong() -> None:
    with pytest.raises(EstimateInputError, match="need one target per prediction, got 2 predictions and 1 targets"):
        fit_loss_model(np.array([1.0, 2.0]), np.array([1.0]))
    with pytest.raises(EstimateInputError, match="hold NaN"):
        fit_loss_model(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    with pytest.raises(EstimateInputError, match="loss model method 'tree' is not supported: expected 'binned'"):
        estimate_loss({"method": "tree"}, np.array([1.0]))
    model = fit_loss_model(*_rows(np.random.default_rng(5), 400, 1, 2))
    assert model is not None
    with pytest.raises(EstimateInputError, match="need finite predictions to estimate a loss, got 0 with 0"):
        estimate_loss(model, np.array([]))

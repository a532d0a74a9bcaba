"""Label-free MAE and RMSE of regression models (direct loss estimation, as NannyML's DLE), pure functions.

At registration a model of the loss is fitted on the holdout: the holdout's predictions are cut into
`LOSS_BINS` quantile bins, and each bin keeps the mean absolute error and the mean squared error of its rows.
On a day without labels each row's expected loss is its bin's, so the day's estimated MAE is the mean of its
rows' expected absolute errors and its estimated RMSE the square root of the mean of their expected squared
errors. The model is a few dozen numbers (bin edges and two means per bin), stored as JSON in the version's
reference profile: no pickle.

**Why binned by prediction.** Measured on the store demo (7 stable labelled days after the training window,
model trained before the shift), against each day's realized MAE: binned means by prediction decile were off
by 2.39 (60 stores) and 1.47 (300 stores) units on average; a ridge model of |residual| on the standardised
features and the prediction 2.35 / 1.54; shallow trees on the same (depth 3 and 4) 2.38-2.46 / 1.23-1.29;
the error proportional to the prediction 2.19 / 1.25; the holdout's MAE as a constant 3.91 / 3.28. The models
that read the features were no better than the noise between them (seven days), so the estimate reads the
predictions only, which any day has, and needs no feature encoding that could drift from the model's own.

**Too small a holdout.** Below `MIN_HOLDOUT_ROWS` (`LOSS_BINS` bins of at least 20 rows each) no loss model
is fitted: such a version has no label-free regression estimate, and the log says why.

**Assumption: no concept drift.** The estimate holds while the loss at a given prediction is as it was on
the holdout: it follows a day whose rows move to regions where the model errs more, not a change of how the
target relates to the features (on the store demo's shifted days, where one region's demand drops by a
third, the estimate stays near the holdout's MAE while the realized MAE rises by about 6 units).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ml_batch.monitoring.inputs import EstimateInputError

LOSS_BINS = 10
"""Quantile bins of the holdout's predictions the loss model keeps a mean loss for."""
MIN_HOLDOUT_ROWS = 20 * LOSS_BINS
"""Fewest holdout rows a loss model is fitted on: 20 rows per bin, so a bin's mean loss is not one row's."""
LOSS_ASSUMPTION = ("no concept drift: the loss at a given prediction is as on the training holdout the loss "
                   "model was fitted on")


def fit_loss_model(predictions: np.ndarray, targets: np.ndarray) -> dict[str, Any] | None:
    """A binned model of the absolute and squared error of regression predictions, as a JSON-serialisable dict.

    Args:
        predictions: The model's predictions on the holdout.
        targets: The holdout's true values.

    Returns:
        {"method": "binned", "edges": [interior cut points], "mae": [per bin], "mse": [per bin], "n": rows,
        "prediction_min", "prediction_max"}; None when the holdout has fewer than `MIN_HOLDOUT_ROWS` rows.
        Bins are right-closed, as the reference profile's; tied predictions collapse edges, so a model may
        have fewer bins.

    Raises:
        EstimateInputError: If the arrays differ in length or hold NaN or infinite values.
    """
    p = np.asarray(predictions, dtype=np.float64).ravel()
    y = np.asarray(targets, dtype=np.float64).ravel()
    if p.size != y.size:
        raise EstimateInputError(f"need one target per prediction, got {p.size} predictions and {y.size} targets")
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(y))):
        raise EstimateInputError("predictions or targets hold NaN or infinite values: cannot fit a loss model")
    if p.size < MIN_HOLDOUT_ROWS:
        return None
    edges = np.unique(np.quantile(p, np.arange(1, LOSS_BINS) / LOSS_BINS))
    bins = np.searchsorted(edges, p, side="left")
    error = y - p
    counts = np.bincount(bins, minlength=edges.size + 1).astype(np.float64)
    # An interpolated edge between tied predictions can leave a bin empty: it gets the holdout's mean loss.
    empty = counts == 0
    mae = np.bincount(bins, weights=np.abs(error), minlength=edges.size + 1) / np.where(empty, 1.0, counts)
    mse = np.bincount(bins, weights=error**2, minlength=edges.size + 1) / np.where(empty, 1.0, counts)
    mae[empty], mse[empty] = np.abs(error).mean(), (error**2).mean()
    return {"method": "binned", "edges": edges.tolist(), "mae": mae.tolist(), "mse": mse.tolist(), "n": int(p.size),
            "prediction_min": float(p.min()), "prediction_max": float(p.max())}


def estimate_loss(model: Mapping[str, Any], predictions: np.ndarray) -> dict[str, Any]:
    """A day's estimated MAE and RMSE from its predictions, through a model from `fit_loss_model`.

    Returns:
        {"mae", "rmse", "n", "notes"}.

    Raises:
        EstimateInputError: If the model is not a binned loss model, or the predictions are empty or not finite.
    """
    if model.get("method") != "binned":
        raise EstimateInputError(f"loss model method {model.get('method')!r} is not supported: expected 'binned'")
    edges = np.asarray(model["edges"], dtype=np.float64)
    mae, mse = np.asarray(model["mae"], dtype=np.float64), np.asarray(model["mse"], dtype=np.float64)
    if not mae.size == mse.size == edges.size + 1:
        raise EstimateInputError(f"loss model has {edges.size} edges, {mae.size} mae and {mse.size} mse values: "
                                 "expected one value per bin, one bin more than edges")
    p = np.asarray(predictions, dtype=np.float64).ravel()
    if p.size == 0 or not np.all(np.isfinite(p)):
        raise EstimateInputError(f"need finite predictions to estimate a loss, got {p.size} with "
                                 f"{int(np.sum(~np.isfinite(p)))} not finite")
    bins = np.searchsorted(edges, p, side="left")
    notes = []
    if p.min() == p.max():
        notes.append(f"every prediction is {p[0]:.4g}: the estimate is one bin's holdout loss")
    return {"mae": float(mae[bins].mean()), "rmse": math.sqrt(float(mse[bins].mean())), "n": int(p.size),
            "notes": notes}

"""A version's reference profile: what drift checks and label-free estimates need about its data, computed
once, when the version is registered, so they never re-read the training window."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from ml_batch.features import feature_frame
from ml_batch.model.training import EVENT_DAY, labels_of, permutation_importance
from ml_batch.monitoring.drift import build_profile
from ml_batch.monitoring.estimate import fit_score_calibration
from ml_batch.spec import Spec


def reference_profile(spec: Spec, pipeline: Pipeline, reference: pd.DataFrame, holdout: pd.DataFrame,
                      holdout_scores: np.ndarray) -> dict[str, Any]:
    """What drift checks and estimates need about a version's data, computed once at registration so they
    never re-read the window: the reference rows with their event days (thresholds are calibrated on the
    reference's own day-to-day variation), the holdout scores, feature importances and, for binary models,
    the score calibration behind label-free performance estimates (`ml_batch.estimate`)."""
    profile = build_profile(spec, feature_frame(reference, spec), holdout_scores,
                            days=reference[EVENT_DAY].to_numpy(), score_days=holdout[EVENT_DAY].to_numpy(),
                            importance=permutation_importance(pipeline, holdout, spec))
    if spec.model.task == "binary":
        profile["score_calibration"] = fit_score_calibration(holdout_scores, labels_of(holdout, spec))
    return profile

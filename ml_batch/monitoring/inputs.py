"""What reference profiles and drift checks read, and the names they give their rows and buckets.

A frame's feature column, a numeric column as float64 values, the scores and a profile's entry of a feature
are each read by one function here, which raises `DriftInputError` naming the feature and what is wrong
(missing column, wrong type, no values, a profile built from another feature list). Nulls are NaN in the
values; infinities are treated as nulls (they have no place in a quantile bin or in a mean).

Categories are the values as `ml_batch.categories` turns them into strings (the rule the pipeline encodes
with), so an integer category is '3' whether or not its column held NULLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ml_batch.categories import MISSING_CATEGORY
from ml_batch.errors import MlBatchError
from ml_batch.spec import FeatureSpec

PROFILE_VERSION = 1
"""The profile's layout. Entries added later (each feature's "support", "multivariate", the per-day
"wasserstein" and `__multivariate__` calibration values) did not change what any existing entry means, so they
did not bump it: a profile stored without them is still version 1, and `check_drift` checks it without the
statistics that need them (`DriftResult.notes` says so). A bump is for a change of meaning, which would make
every stored profile unreadable until its model is retrained."""
SCORE = "__score__"
"""Feature name of the rows that describe the score (prediction) distribution."""
MISSING = MISSING_CATEGORY
"""Category that counts nulls of a categorical feature."""
UNSEEN = "__unseen__"
"""Bucket of the categories a reference profile has never seen."""
OTHER = "__other__"
"""Category that pools the rarest reference categories when a feature has more than `max_categories`."""
NULL_BIN = "null"
"""Label of a numeric feature's null bin."""
PREDICTED_CLASS = "__predicted_class__"
"""Feature name of the rows that describe a multiclass model's predicted-class mix."""
CLASS_PREFIX = f"{SCORE}:"
"""Prefix of the feature names of the rows that describe one class's probability (`__score__:billing`)."""


def class_feature(name: str) -> str:
    """The feature name of the rows of one class's probability."""
    return f"{CLASS_PREFIX}{name}"


def is_class_feature(feature: str) -> bool:
    """Whether a row's feature is the predicted-class mix or a class's probability (calibrated on the holdout
    days, as the scores are)."""
    return feature == PREDICTED_CLASS or feature.startswith(CLASS_PREFIX)


class DriftInputError(MlBatchError, ValueError):
    """A frame, score array or profile cannot be profiled or checked (empty, missing column, wrong type)."""

    deterministic = True


class EstimateInputError(MlBatchError, ValueError):
    """Scores, a calibration map or a loss model cannot be used for an estimate (empty, not probabilities,
    malformed): `ml_batch.monitoring.estimate` and `loss_estimate` raise it."""

    deterministic = True


def column(frame: pd.DataFrame, feature: FeatureSpec, what: str) -> pd.Series:
    """The column of `feature` in `frame` (`what` names the frame in the error).

    Raises:
        DriftInputError: If the frame has no such column, or more than one.
    """
    if feature.name not in frame.columns:
        raise DriftInputError(
            f"{what} has no column for feature {feature.name!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    values = frame[feature.name]
    if not isinstance(values, pd.Series):
        raise DriftInputError(f"{what} has more than one column named {feature.name!r}")
    return values


def numeric_values(values: pd.Series, name: str) -> np.ndarray:
    """float64 values of a numeric column; nulls (and, for drift, infinities) are NaN.

    Raises:
        DriftInputError: If the column is neither numeric nor boolean.
    """
    if not (pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)):
        raise DriftInputError(f"feature {name!r} is numeric but its column has dtype {values.dtype}")
    array = values.to_numpy(dtype=np.float64, na_value=np.nan)
    # Infinities are treated as nulls: they have no place in a quantile bin or in a mean.
    return np.where(np.isinf(array), np.nan, array)


def score_values(scores: np.ndarray, what: str) -> np.ndarray:
    """The scores as float64 values, infinities as NaN.

    Raises:
        DriftInputError: If they are not numbers, or empty.
    """
    try:
        values = np.asarray(scores, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise DriftInputError(f"{what} are not numbers (feature {SCORE!r}): {exc}") from exc
    if values.size == 0:
        raise DriftInputError(f"{what} are empty: cannot profile or check feature {SCORE!r}")
    return np.where(np.isinf(values), np.nan, values)


def reference_entry(profile: Mapping[str, Any], feature: FeatureSpec) -> Mapping[str, Any]:
    """The profile's entry of `feature`.

    Raises:
        DriftInputError: If the profile has none, or one of another type than the spec's.
    """
    features = profile.get("features")
    if not isinstance(features, Mapping) or feature.name not in features:
        raise DriftInputError(
            f"profile has no entry for feature {feature.name!r}: it was built from another feature list"
        )
    reference = features[feature.name]
    if reference.get("type") != feature.type:
        raise DriftInputError(
            f"feature {feature.name!r} is {feature.type} in the spec but {reference.get('type')!r} in the profile"
        )
    return reference

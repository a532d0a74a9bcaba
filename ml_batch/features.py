"""The feature pipeline: one sklearn Pipeline (coercion, imputation, encoding, estimator) per model.

Training and scoring share it because it is pickled into the registered artifact: the scoring code never
re-implements a transformation, so training/serving skew cannot creep in.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml_batch.spec import Spec

MISSING_CATEGORY = "__missing__"


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical inputs as plain strings, with missing values as their own category.

    Module-level (not a lambda) so that pickled pipelines can find it again at load time.
    """
    out = frame.astype("object")
    return out.where(out.notna(), MISSING_CATEGORY).astype(str)


def as_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric inputs as float64 (nullable integers and decimals from SQL become NaN-aware floats).

    Already-float64 frames (the usual case) pass through without a copy: the imputer copies anyway.
    """
    if all(dtype == np.float64 for dtype in frame.dtypes):
        return frame
    return frame.apply(pd.to_numeric, errors="coerce").astype(np.float64)


def build_pipeline(spec: Spec) -> Pipeline:
    """A fresh, unfitted pipeline for `spec`: numeric → impute median (+ missing indicator) → scale;
    categorical → strings with an explicit missing category → one-hot (unseen categories ignored)."""
    numeric = [f.name for f in spec.features if f.type == "numeric"]
    categorical = [f.name for f in spec.features if f.type == "categorical"]
    transformers: list[tuple[str, Pipeline, list[str]]] = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(as_float, feature_names_out="one-to-one")),
                        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
                        ("scale", StandardScaler()),
                    ]
                ),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("coerce", FunctionTransformer(as_category_strings, feature_names_out="one-to-one")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)),
                    ]
                ),
                categorical,
            )
        )
    features = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    estimator = spec.estimator_class()(**spec.model.params)
    return Pipeline([("features", features), ("model", estimator)])


def feature_frame(frame: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """The spec's feature columns, in the spec's order (the order the artifact was fitted with)."""
    missing = [name for name in spec.feature_names if name not in frame.columns]
    if missing:
        raise KeyError(f"feature columns {missing} are not in the frame (columns: {list(frame.columns)})")
    return frame.loc[:, spec.feature_names]

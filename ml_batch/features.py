"""The feature pipeline: one sklearn Pipeline (coercion, imputation, encoding, estimator) per model.

Training and scoring share it because it is pickled into the registered artifact: the scoring code never
re-implements a transformation, so training/serving skew cannot creep in.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from ml_batch.categories import MISSING_CATEGORY, category_frame
from ml_batch.spec import Spec

CANONICAL = "canonical"
"""Category encoding of pipelines built with `ml_batch.categories.category_frame` (integer 3 -> '3')."""
LEGACY = "legacy"
"""Category encoding of pipelines built with `as_category_strings` (3 -> '3.0' when the column had nulls)."""


def as_category_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """LEGACY: the categorical step of pipelines registered before canonical categories; never use it anew.

    It is `str()` of whatever pandas holds, so an integer category reads '3.0' when the column held NULLs
    (pandas made it float64) and '3' when it did not. Pipelines registered with it pickled it by reference
    and must keep encoding the way they were trained, so it stays here, unchanged. New pipelines use
    `ml_batch.categories.category_frame`; `category_encoding` tells which one a pipeline has.
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
    categorical → canonical category strings (`ml_batch.categories`, missing values their own category) →
    one-hot (unseen categories ignored)."""
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
                        ("coerce", FunctionTransformer(category_frame, feature_names_out="one-to-one")),
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


def category_encoding(pipeline: Any) -> str | None:
    """How a fitted (or loaded) pipeline turns categorical values into strings, read from the pipeline itself.

    Returns:
        `CANONICAL` (`ml_batch.categories.category_frame`), `LEGACY` (`as_category_strings`, from pipelines
        registered before it), None when the pipeline has no categorical step of ours (no categorical
        feature, or a pipeline not built by `build_pipeline`); another step's function shows as
        "custom: module.name".
    """
    features = getattr(pipeline, "named_steps", {}).get("features")
    transformers = getattr(features, "transformers", None) or []
    for name, step, _columns in transformers:
        if name != "categorical":
            continue
        coerce = getattr(step, "named_steps", {}).get("coerce")
        func = getattr(coerce, "func", None)
        if func is None:
            return None
        if func is category_frame:
            return CANONICAL
        if func is as_category_strings:
            return LEGACY
        return f"custom: {func.__module__}.{func.__qualname__}"
    return None

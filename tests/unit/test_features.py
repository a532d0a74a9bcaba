from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml_batch.features import as_category_strings, build_pipeline
from ml_batch.spec import load_spec

DEMO = Path(__file__).resolve().parents[2] / "include" / "models" / "credit_default.yaml"


def _frame(n: int, rng: np.random.Generator) -> pd.DataFrame:
    spec = load_spec(DEMO)
    data: dict[str, object] = {}
    for feature in spec.features:
        if feature.type == "numeric":
            data[feature.name] = rng.normal(10, 3, n)
        else:
            data[feature.name] = rng.choice(feature.categories or ["a", "b"], n)
    return pd.DataFrame(data)


def test_pipeline_fits_with_nulls_and_ignores_unseen_categories() -> None:
    rng = np.random.default_rng(0)
    spec = load_spec(DEMO)
    frame = _frame(400, rng)
    frame.loc[::7, "income"] = np.nan
    frame.loc[::11, "channel"] = None
    y = (frame["income"].fillna(10) > 10).astype(int)
    pipeline = build_pipeline(spec).fit(frame, y)
    assert list(pipeline.feature_names_in_) == spec.feature_names
    unseen = frame.head(5).copy()
    unseen["channel"] = "crypto_partner"
    proba = pipeline.predict_proba(unseen)[:, 1]
    assert proba.shape == (5,) and np.all((proba >= 0) & (proba <= 1))


def test_missing_categories_become_their_own_value() -> None:
    out = as_category_strings(pd.DataFrame({"c": ["a", None, np.nan]}))
    assert out["c"].tolist() == ["a", "__missing__", "__missing__"]

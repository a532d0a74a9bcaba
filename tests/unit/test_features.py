from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from ml_batch.categories import category_frame
from ml_batch.features import CANONICAL, LEGACY, as_category_strings, build_pipeline, category_encoding
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


def _graded(n: int, with_nulls: bool, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """An integer category `grade` that decides the label; as float64 (pandas' view of it) when it has NULLs."""
    grade = rng.integers(0, 4, n)
    frame = pd.DataFrame({"x": rng.normal(size=n), "grade": grade})
    if with_nulls:
        frame["grade"] = frame["grade"].astype(np.float64)
        frame.loc[::9, "grade"] = np.nan
    return frame, (grade >= 2).astype(int)


def _graded_spec() -> object:
    from tests.integration.helpers import toy_spec

    return toy_spec("s", features=[{"name": "x", "type": "numeric"}, {"name": "grade", "type": "categorical"}])


def test_a_pipeline_scores_an_integer_category_the_same_with_or_without_nulls() -> None:
    rng = np.random.default_rng(1)
    train, y = _graded(600, with_nulls=True, rng=rng)
    pipeline = build_pipeline(_graded_spec()).fit(train, y)  # type: ignore[arg-type]
    day, _ = _graded(50, with_nulls=False, rng=rng)
    assert day["grade"].dtype == np.int64
    with_a_null = pd.concat([day, pd.DataFrame({"x": [0.0], "grade": [np.nan]})], ignore_index=True)
    assert with_a_null["grade"].dtype == np.float64
    np.testing.assert_array_equal(pipeline.predict_proba(day)[:, 1], pipeline.predict_proba(with_a_null)[:50, 1])
    onehot = pipeline.named_steps["features"].named_transformers_["categorical"].named_steps["onehot"]
    assert onehot.categories_[0].tolist() == ["0", "1", "2", "3", "__missing__"]


def test_new_pipelines_record_the_canonical_encoding_and_old_ones_keep_the_legacy_one() -> None:
    spec = _graded_spec()
    rng = np.random.default_rng(2)
    train, y = _graded(300, with_nulls=True, rng=rng)
    pipeline = build_pipeline(spec).fit(train, y)  # type: ignore[arg-type]
    assert category_encoding(pipeline) == CANONICAL
    coerce = pipeline.named_steps["features"].named_transformers_["categorical"].named_steps["coerce"]
    assert coerce.func is category_frame
    # an artifact registered before canonical categories: its pickle names the legacy function
    old = build_pipeline(spec)  # type: ignore[arg-type]
    old.named_steps["features"].transformers[1][1].named_steps["coerce"].func = as_category_strings
    old.fit(train, y)
    loaded = pickle.loads(pickle.dumps(old))
    assert b"as_category_strings" in pickle.dumps(old) and category_encoding(loaded) == LEGACY
    onehot = loaded.named_steps["features"].named_transformers_["categorical"].named_steps["onehot"]
    assert onehot.categories_[0].tolist() == ["0.0", "1.0", "2.0", "3.0", "__missing__"]  # as it was trained
    np.testing.assert_array_equal(loaded.predict_proba(train), old.predict_proba(train))
    assert category_encoding(build_pipeline(spec.model_copy(update={"features": spec.features[:1]}))) is None  # type: ignore[attr-defined]


def test_the_legacy_function_is_unchanged() -> None:
    out = as_category_strings(pd.DataFrame({"g": [3.0, np.nan], "h": [3, 4]}))
    assert out.to_dict("list") == {"g": ["3.0", "__missing__"], "h": ["3", "4"]}

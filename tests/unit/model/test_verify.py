"""The holdout sample `models verify` re-scores (`ml_batch.model.verify`): which rows, and an exact round trip."""

from __future__ import annotations

import decimal
import json
import math

import numpy as np
import pandas as pd
import pytest

from ml_batch.categories import category_text
from ml_batch.errors import FeatureSchemaMismatch
from ml_batch.model.verify import SAMPLE_ROWS, HoldoutSample, holdout_sample, max_abs_diff
from ml_batch.spec import Spec
from tests.integration.helpers import toy_spec

# Floats whose shortest text is long, tiny, huge, subnormal, negative zero, and the non-finite ones.
AWKWARD = [0.1 + 0.2, 1 / 3, 1e-300, -1.7976931348623157e308, 5e-324, -0.0, 123456789.12345679, math.nan,
           math.inf, -math.inf, None, decimal.Decimal("2.50"), 7]
CATEGORIES = ["red", None, math.nan, "NaN", 3, 3.0, 2.5, True, pd.NA, "inf", math.inf, decimal.Decimal("4.00"), ""]


@pytest.fixture(scope="module")
def spec() -> Spec:
    return toy_spec("s")


def _holdout(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": range(n), "x1": np.arange(n) / 7, "x2": np.arange(n) * 1e-17,
                         "color": ["red", "blue"] * (n // 2) + ["red"] * (n % 2)})


def test_the_sample_is_evenly_spaced_deterministic_and_at_most_500_rows(spec: Spec) -> None:
    holdout = _holdout(1234)
    scores = np.linspace(0, 1, 1234)
    sample = HoldoutSample.of(spec, holdout, scores)
    assert len(sample.scores) == SAMPLE_ROWS == 500
    positions = [i * 1234 // 500 for i in range(500)]
    assert sample.features["x1"] == (np.arange(1234) / 7)[positions].tolist()
    assert sample.scores == scores[positions].tolist()
    assert positions[0] == 0 and positions[-1] > 1200 and len(set(positions)) == 500
    assert HoldoutSample.of(spec, holdout, scores) == sample
    small = HoldoutSample.of(spec, _holdout(3), np.array([0.2, 0.4, 0.6]))
    assert small.scores == [0.2, 0.4, 0.6] and small.features["color"] == ["red", "blue", "red"]


def test_one_score_per_row_is_required(spec: Spec) -> None:
    with pytest.raises(ValueError, match="2 scores for 3 holdout rows"):
        HoldoutSample.of(spec, _holdout(3), np.array([0.1, 0.2]))


def test_values_read_back_exactly_through_json(spec: Spec) -> None:
    n = len(AWKWARD)
    holdout = pd.DataFrame({"x1": pd.Series(AWKWARD, dtype=object), "x2": np.arange(n, dtype=np.int64),
                            "color": pd.Series(CATEGORIES, dtype=object)})
    scores = np.array([0.1 + 0.2, 1e-300, *np.linspace(0, 1, n - 2)])
    stored = json.loads(json.dumps(holdout_sample(spec, holdout, scores), allow_nan=False))  # strict JSON
    sample = HoldoutSample.from_dict(stored)
    frame = sample.frame(spec)
    expected_x1 = pd.to_numeric(holdout["x1"], errors="coerce").astype(np.float64).to_numpy()
    assert frame["x1"].dtype == np.float64
    assert np.array_equal(frame["x1"].to_numpy(), expected_x1, equal_nan=True)
    assert [math.copysign(1, v) for v in frame["x1"][:6]] == [math.copysign(1, v) for v in expected_x1[:6]]
    assert frame["x2"].tolist() == list(range(n))
    assert [category_text(v) for v in frame["color"]] == [category_text(v) for v in CATEGORIES]
    assert np.array_equal(sample.recorded_scores(), scores)


def test_a_sample_of_other_features_is_refused(spec: Spec) -> None:
    sample = HoldoutSample({"x1": [1.0], "color": ["red"]}, [0.5])
    with pytest.raises(FeatureSchemaMismatch, match=r"holdout sample has features \['x1', 'color'\]"):
        sample.frame(spec)


def test_max_abs_diff_treats_nan_on_one_side_and_other_lengths_as_infinitely_far() -> None:
    assert max_abs_diff(np.array([0.5, math.nan]), np.array([0.5, math.nan])) == 0.0
    assert max_abs_diff(np.array([0.5, 0.25]), np.array([0.5, 0.5])) == 0.25
    assert max_abs_diff(np.array([0.5, math.nan]), np.array([0.5, 0.5])) == math.inf
    assert max_abs_diff(np.array([0.5]), np.array([0.5, 0.5])) == math.inf
    assert max_abs_diff(np.array([]), np.array([])) == 0.0


def test_the_sample_frame_takes_the_specs_column_order_whatever_order_the_stored_keys_come_in(spec: Spec) -> None:
    holdout = pd.DataFrame({name: [1.0, 2.0] for name in spec.feature_names})
    stored = holdout_sample(spec, holdout, np.array([0.1, 0.2]))
    stored["features"] = dict(reversed(list(stored["features"].items())))  # as jsonb may hand them back
    assert list(HoldoutSample.from_dict(stored).frame(spec).columns) == spec.feature_names


def test_a_multiclass_sample_records_and_reads_back_each_rows_class_probabilities(spec: Spec) -> None:
    holdout = pd.DataFrame({name: [1.0, 2.0, 3.0] for name in spec.feature_names})
    scores = np.array([[0.2, 0.8], [0.5, 0.5], [1 / 3, 2 / 3]])
    stored = json.loads(json.dumps(holdout_sample(spec, holdout, scores)))
    recorded = HoldoutSample.from_dict(stored).recorded_scores()
    assert recorded.shape == (3, 2) and np.array_equal(recorded, scores)
    assert max_abs_diff(scores, recorded) == 0.0
    assert max_abs_diff(scores[:, :1], recorded) == math.inf  # another class count is never "the same"

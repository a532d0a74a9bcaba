"""The branch-free evaluator of benchmarks/predict_probe.py gives scikit-learn's raw scores, to the last bit.

The probe's timings are its own business (nothing here times anything); what it reports as "max abs diff 0"
is checked here: NaN in both missing directions, values on a threshold, infinities, huge values, a last
block shorter than 64 rows, two threads, a classifier and a regressor.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier

from tests.support.scripts import load_script

PROBE = Path(__file__).resolve().parents[3] / "benchmarks" / "predict_probe.py"

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the evaluator")


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    return load_script(PROBE, "ml_batch_predict_probe")


@pytest.fixture(scope="module")
def evaluator(probe: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> object:
    return probe.BranchFree(tmp_path_factory.mktemp("branch-free"))


def _rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    y = x[:, 0] - 0.5 * x[:, 1] ** 2 + np.sin(3 * x[:, 2]) + 0.3 * rng.standard_normal(n)
    x[rng.random(n) < 0.15, 3] = np.nan  # missing values at fit: splits learn where NaN goes
    x[rng.random(n) < 0.05, 4] = np.nan
    return x, y


def _scored(n: int) -> np.ndarray:
    x, _ = _rows(n, 7)
    x[::11, 0] = np.nan  # NaN where fit saw none: scikit-learn's rule sends it to the larger child
    x[1::13, 1] = np.inf
    x[2::17, 2] = -np.inf
    x[3::19, 5] = 1e300
    x[4::23, 5] = -1e300
    return x


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_the_evaluator_gives_scikit_learns_raw_scores_exactly(probe: ModuleType, evaluator: object,
                                                              kind: str) -> None:
    x, y = _rows(4_000, 1)
    model = (HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(x, y > 0) if kind == "binary"
             else HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, y))
    table = probe.node_table(model)
    split = table.nodes["left"] != np.arange(len(table.nodes))
    # the case under test: splits that send NaN left and splits that send it right
    assert set(table.nodes["missing_left"][split]) == {0, 1}
    rows = _scored(1_003)
    # a value equal to a split's threshold goes left (x <= threshold): one row per split, at its feature
    ties = _scored(int(split.sum()))
    ties[np.arange(len(ties)), table.nodes["feature"][split]] = table.nodes["threshold"][split]
    rows = np.vstack([rows, ties])
    assert len(rows) % 64, "the last block must be shorter than 64 rows"
    expected = model._raw_predict(rows)[:, 0]
    for threads in (1, 2):
        got = evaluator.raw(table, rows, threads=threads)
        np.testing.assert_array_equal(got, expected)


def test_models_the_evaluator_cannot_walk_are_refused_by_name(probe: ModuleType) -> None:
    x, y = _rows(600, 2)
    classes = np.digitize(y, [-0.5, 0.5])
    with pytest.raises(ValueError, match="3 trees per iteration"):
        probe.node_table(HistGradientBoostingClassifier(max_iter=3).fit(x, classes))
    with pytest.raises(ValueError, match="RandomForestClassifier is not a fitted HistGradientBoosting model"):
        probe.node_table(RandomForestClassifier(n_estimators=2).fit(np.nan_to_num(x), y > 0))
    categories = np.column_stack([np.nan_to_num(x[:, :2]), np.arange(600) % 4])
    with pytest.raises(ValueError, match="categorical split"):
        probe.node_table(HistGradientBoostingClassifier(max_iter=5, categorical_features=[2])
                         .fit(categories, (categories[:, 2] == 1) ^ (y > 1)))

"""Tree models compiled to native code (`ml_batch.model.compiled`): identical scores for every supported estimator
and task, unsupported estimators on scikit-learn, and a library refused unless it is the signed one for here."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml_batch.config import artifact_key
from ml_batch.errors import ArtifactIntegrityError
from ml_batch.features import build_pipeline, feature_frame
from ml_batch.model import compiled
from ml_batch.model.compiled import TOLERANCE, CompiledScorer, compile_pipeline, load_library, unfit_reason
from ml_batch.model.labels import LABEL
from ml_batch.model.signing import key_id, sign, sign_library
from ml_batch.model.training import labels_of, predict_scores
from ml_batch.spec import Spec
from tests.integration.helpers import toy_spec

pytestmark = pytest.mark.skipif(compiled.shutil.which("gcc") is None, reason="needs gcc to compile")

SMALL = {  # few, shallow trees: each compiles in a second or two
    "HistGradientBoosting": {"max_iter": 8, "max_leaf_nodes": 8},
    "RandomForest": {"n_estimators": 4, "max_depth": 5, "random_state": 0},
    "ExtraTrees": {"n_estimators": 4, "max_depth": 5, "random_state": 0},
    "GradientBoosting": {"n_estimators": 6, "max_depth": 3, "random_state": 0},
}
CASES = [(family, task) for family in SMALL for task in ("binary", "regression", "multiclass")]


def _spec(family: str, task: str) -> Spec:
    kind = "Regressor" if task == "regression" else "Classifier"
    data = toy_spec("s").model_dump(mode="json")
    data["model"] = {"task": task, "estimator": f"sklearn.ensemble.{family}{kind}", "params": SMALL[family]}
    data["training"]["metric"] = {"binary": "roc_auc", "regression": "rmse", "multiclass": "log_loss"}[task]
    data["training"].pop("min_score")
    return Spec.model_validate(data)


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Numeric features with NaN and extreme values, a categorical one (one-hot) with missing values, and labels
    of each task that depend on them."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 3, n)
    color = rng.choice(np.array(["red", "blue", None], dtype=object), n, p=[0.45, 0.45, 0.1])
    signal = x1 + 0.8 * (color == "red") - 0.3 * x2
    x1[rng.random(n) < 0.08] = np.nan
    x2[:6] = [1e30, -1e30, 3.4e38, -3.4e38, 1e-300, -0.0]
    return pd.DataFrame({"id": np.arange(n), "x1": x1, "x2": x2, "color": color,
                         "y_binary": (signal + rng.normal(0, 0.5, n) > 0.3).astype(int),
                         "y_regression": 5 * signal + rng.normal(0, 1, n),
                         "y_multiclass": np.digitize(signal, [-0.5, 0.6, 1.5]).astype(str)})


def _fitted(spec: Spec, train: pd.DataFrame) -> Any:
    pipeline = build_pipeline(spec)
    pipeline.fit(feature_frame(train, spec), labels_of(train.assign(**{LABEL: train[f"y_{spec.model.task}"]}), spec))
    return pipeline


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _frame(1500, 0), _frame(600, 1)


@pytest.mark.parametrize(("family", "task"), CASES)
def test_compiled_scores_equal_scikit_learns(family: str, task: str, data: tuple[pd.DataFrame, pd.DataFrame],
                                             tmp_path: Path) -> None:
    train, holdout = data
    spec = _spec(family, task)
    pipeline = _fitted(spec, train)
    expected = predict_scores(pipeline, holdout, spec)
    found = compile_pipeline(pipeline, spec, holdout, expected, nthread=2)
    assert found.status == "compiled", found.record["reason"]
    assert found.library is not None and found.record["max_abs_diff"] <= TOLERANCE
    assert found.record["library_sha256"] == hashlib.sha256(found.library).hexdigest()
    assert found.record["holdout_rows"] == len(holdout) and found.record["compile_seconds"] > 0
    assert {"os", "arch", "libc", "libc_version", "compiler", "treelite", "tl2cgen"} <= set(found.record["platform"])
    # Scored again from the stored bytes, on other rows than the holdout it was proven on (and on none).
    library = tmp_path / "lib.so"
    library.write_bytes(found.library)
    scorer = CompiledScorer(pipeline, library, nthread=1)
    other = _frame(400, 2)
    got, want = scorer.scores(other, spec), predict_scores(pipeline, other, spec)
    assert got.shape == want.shape and got.dtype == np.float64
    assert np.nanmax(np.abs(got - want)) <= TOLERANCE
    assert scorer.scores(other.iloc[:0], spec).shape == want[:0].shape


def test_an_unsupported_estimator_is_not_compiled_and_says_why(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, holdout = data
    spec = toy_spec("s")  # LogisticRegression
    pipeline = _fitted(spec, train.assign(y_binary=train["y_binary"]))
    found = compile_pipeline(pipeline, spec, holdout, predict_scores(pipeline, holdout, spec), nthread=1)
    assert found.status == "unsupported" and found.library is None
    assert "sklearn.linear_model._logistic.LogisticRegression is not one treelite compiles" in found.record["reason"]
    assert "HistGradientBoostingClassifier" in found.record["reason"]


def test_an_estimator_above_the_node_limit_is_not_compiled_and_says_how_large(
        data: tuple[pd.DataFrame, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> None:
    train, holdout = data
    spec = _spec("RandomForest", "binary")
    pipeline = _fitted(spec, train)
    nodes = compiled.node_count(pipeline[-1])
    assert nodes == sum(tree.tree_.node_count for tree in pipeline[-1].estimators_) > 4
    scores = predict_scores(pipeline, holdout, spec)
    monkeypatch.setenv(compiled.MAX_NODES_ENV, str(nodes - 1))
    found = compile_pipeline(pipeline, spec, holdout, scores, nthread=1)
    assert found.status == "too_large" and found.library is None and found.record["nodes"] == nodes
    assert f"has {nodes} tree nodes, more than ML_BATCH_COMPILE_MAX_NODES {nodes - 1}" in found.record["reason"]
    monkeypatch.setenv(compiled.MAX_NODES_ENV, "lots")
    found = compile_pipeline(pipeline, spec, holdout, scores, nthread=1)
    assert found.status == "failed" and "ML_BATCH_COMPILE_MAX_NODES='lots': expected a positive whole number" in (
        found.record["reason"])
    boosted = _fitted(_spec("HistGradientBoosting", "multiclass"), train)[-1]
    assert compiled.node_count(boosted) == sum(len(t.nodes) for it in boosted._predictors for t in it)


def test_a_library_that_scores_differently_is_a_mismatch(data: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, holdout = data
    spec = _spec("GradientBoosting", "regression")
    pipeline = _fitted(spec, train)
    wrong = predict_scores(pipeline, holdout, spec) + 1e-9
    found = compile_pipeline(pipeline, spec, holdout, wrong, nthread=1)
    assert found.status == "mismatch" and found.library is None
    assert f"{len(holdout)} holdout rows up to 1e-09 away from scikit-learn (tolerance 1e-12)" in found.record["reason"]


@pytest.fixture(scope="module")
def library(data: tuple[pd.DataFrame, pd.DataFrame]) -> bytes:
    train, holdout = data
    spec = _spec("HistGradientBoosting", "binary")
    pipeline = _fitted(spec, train)
    found = compile_pipeline(pipeline, spec, holdout, predict_scores(pipeline, holdout, spec), nthread=1)
    assert found.library is not None
    return found.library


def _private(tmp_path: Path) -> Path:
    folder = tmp_path / "private"
    folder.mkdir(mode=0o700)
    return folder


def test_a_signed_library_is_written_privately_and_verified(library: bytes, tmp_path: Path) -> None:
    key = artifact_key()
    path = load_library("toy", 3, library, hashlib.sha256(library).hexdigest(), sign_library(key, "toy", 3, library),
                        key_id(key), _private(tmp_path))
    assert path.read_bytes() == library and (path.stat().st_mode & 0o777) == 0o600


def _tampered(library: bytes) -> bytes:
    return library[:4000] + bytes([library[4000] ^ 0xFF]) + library[4001:]


@pytest.mark.parametrize("also_sha256", [False, True], ids=["bytes", "bytes and sha256"])
def test_a_tampered_library_is_refused_before_it_is_loaded(library: bytes, tmp_path: Path, also_sha256: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import tl2cgen

    loaded: list[Any] = []
    monkeypatch.setattr(tl2cgen, "Predictor", lambda *a, **k: loaded.append(a))  # records a load, if any
    key = artifact_key()
    bad = _tampered(library)
    sha = hashlib.sha256(bad if also_sha256 else library).hexdigest()
    expected = "library HMAC-SHA256 is" if also_sha256 else "library sha256 is"
    with pytest.raises(ArtifactIntegrityError, match=expected):
        load_library("toy", 3, bad, sha, sign_library(key, "toy", 3, library), key_id(key), _private(tmp_path))
    assert loaded == []


def test_the_artifacts_signature_does_not_vouch_for_a_library(library: bytes, tmp_path: Path) -> None:
    key = artifact_key()
    with pytest.raises(ArtifactIntegrityError, match="compiled library: library HMAC-SHA256"):
        load_library("toy", 3, library, hashlib.sha256(library).hexdigest(), sign(key, "toy", 3, library),
                     key_id(key), _private(tmp_path))


def test_a_library_for_another_platform_is_not_loaded() -> None:
    here = compiled.build_platform()
    assert unfit_reason(here) is None
    elsewhere = {**here, "arch": "aarch64" if here["arch"] != "aarch64" else "x86_64", "libc_version": "2.17"}
    reason = unfit_reason(elsewhere)
    assert reason is not None and "built for another platform" in reason
    assert f"arch {elsewhere['arch']!r} (here {here['arch']!r})" in reason and "libc_version '2.17'" in reason
    assert unfit_reason({**here, "compiler": "gcc (other) 99"}) is None  # recorded, not required to load
    assert unfit_reason(None) == "the library records no platform"


def test_the_sample_check_fails_naming_the_difference() -> None:
    same = np.array([0.25, 0.5, np.nan])
    assert compiled.sample_check(same, same.copy(), "run r") == 0.0
    said = r"run r: the compiled library scores 3 sample rows up to 2(\.\d+)?e-12 away"
    with pytest.raises(compiled.CompiledScoresDiffer, match=said):
        compiled.sample_check(same + 2e-12, same, "run r")


def test_the_scoring_path_of_a_record_is_said_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    here = compiled.build_platform()
    record = compiled._record("compiled", None, library_sha256="ab" * 32, library_size=187_800, max_abs_diff=5e-16,
                              compile_seconds=0.9, holdout_rows=2_000)
    assert compiled.sklearn_reason(record) is None
    said = compiled.describe(record)
    assert said.startswith(f"compiled here: 187,800 bytes, sha256 {'ab' * 6}, built in 0.9 s with {here['compiler']}")
    assert said.endswith("max abs diff 5e-16 on 2000 holdout rows")

    elsewhere = {**record, "platform": {**here, "arch": "riscv64"}}
    assert compiled.describe(elsewhere).startswith(
        "scikit-learn: its compiled library is not loaded here: built for another platform: arch 'riscv64'")
    assert "; library: 187,800 bytes" in compiled.describe(elsewhere)
    too_large = compiled._record("too_large", "HistGradientBoostingClassifier has 30000 tree nodes, more than ...")
    assert compiled.describe(too_large) == ("scikit-learn: the version was not compiled (too_large: "
                                            "HistGradientBoostingClassifier has 30000 tree nodes, more than ...)")
    assert compiled.describe(None).startswith("scikit-learn: the version was registered without compiling")
    monkeypatch.setenv(compiled.COMPILE_ENV, "0")
    assert compiled.describe(record).startswith("scikit-learn: ML_BATCH_COMPILE=0; library: 187,800 bytes")

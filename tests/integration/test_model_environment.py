"""Issue 22 item 2: each version records its environment; another scikit-learn minor is refused until
`ml-batch models verify` re-scores the stored holdout sample and finds the same scores."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from ml_batch.config import Settings
from ml_batch.db.tables import model_versions
from ml_batch.errors import EnvironmentMismatch, RegistryError, VerificationFailed
from ml_batch.model import environment, registry
from ml_batch.model.training import TrainResult, train
from ml_batch.model.verify import HoldoutSample, holdout_sample, stored_sample, verify_version
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec, write_spec
from tests.support.cli import run_cli
from tests.support.toy import AS_OF

pytestmark = pytest.mark.integration

_MAJOR, _MINOR, *_ = sklearn.__version__.split(".")
OTHER_MINOR = f"{_MAJOR}.{int(_MINOR) + 1}.0"  # what an older (or newer) worker image would have recorded


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> Spec:
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))  # the CLI subprocess inherits it
    monkeypatch.setattr(registry, "_LOADED", {})
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, dt.date(2026, 5, 1), days=20)
    return spec


@pytest.fixture()
def trained(engine: sa.Engine, toy: Spec) -> TrainResult:
    return train(engine, toy, AS_OF)


def _register(engine: sa.Engine, spec: Spec, result: TrainResult, *, sample: bool = True,
              source: str = "trained") -> registry.ModelVersion:
    new = registry.NewVersion(
        metrics=result.metrics, source=source, window=result.window.as_dict(), n_train=result.n_train,
        n_holdout=result.n_holdout,
        holdout_sample=holdout_sample(spec, result.holdout, result.holdout_scores) if sample else None)
    return registry.register(engine, spec, result.pipeline, new, actor="alice")


def _set(engine: sa.Engine, spec: Spec, version: int, **values: object) -> None:
    """Rewrite a version's row as an older worker (or a tamperer) would have left it."""
    with engine.begin() as conn:
        conn.execute(model_versions.update().where(model_versions.c.model_name == spec.name,
                                                   model_versions.c.version == version).values(**values))


def _fitted_elsewhere(engine: sa.Engine, spec: Spec, version: int) -> None:
    _set(engine, spec, version, environment={**environment.current(), "scikit-learn": OTHER_MINOR})


def test_a_version_records_the_environment_it_was_fitted_in(engine: sa.Engine, toy: Spec,
                                                            trained: TrainResult) -> None:
    version = _register(engine, toy, trained)
    assert version.environment == environment.current()
    assert version.environment["scikit-learn"] == sklearn.__version__ and version.verified_environments == []
    registered = _register(engine, toy, trained, source="registered")
    assert registered.environment == environment.current(skops=True) and "skops" in registered.environment
    assert registry.load(engine, toy, version.version).info.version == version.version


def test_another_scikit_learn_minor_is_refused_naming_both_versions(engine: sa.Engine, toy: Spec,
                                                                    trained: TrainResult) -> None:
    _register(engine, toy, trained)
    _fitted_elsewhere(engine, toy, 1)
    with pytest.raises(EnvironmentMismatch) as refused:
        registry.load(engine, toy, 1)
    message = str(refused.value)
    assert f"model 'toy' version 1 was fitted with scikit-learn {OTHER_MINOR} (this process has " \
           f"{sklearn.__version__}): refusing to unpickle it" in message
    assert "run 'ml-batch models verify -m toy --version 1'" in message
    assert registry._LOADED == {}, "nothing may be unpickled before the environment is checked"


def test_models_verify_rescores_and_unlocks_the_version(settings: Settings, engine: sa.Engine, toy: Spec,
                                                        trained: TrainResult, tmp_path: Path) -> None:
    _register(engine, toy, trained)
    _fitted_elsewhere(engine, toy, 1)
    cli_settings = dataclasses.replace(settings, specs_dir=write_spec(toy, tmp_path / "specs"))

    verified = json.loads(run_cli(cli_settings, "models", "verify", "-m", "toy", "--version", "1", "--json").stdout)
    assert verified["rows"] == min(trained.n_holdout, 500) and verified["max_abs_diff"] == 0.0
    assert verified["environment"] == environment.current()
    assert verified["fitted_environment"]["scikit-learn"] == OTHER_MINOR

    loaded = registry.load(engine, toy, 1)
    [entry] = loaded.info.verified_environments
    assert entry["environment"] == environment.current() and entry["verified_by"] == "cli-test"
    assert (entry["rows"], entry["max_abs_diff"]) == (verified["rows"], 0.0)
    event = registry.events(engine, "toy")[0]
    assert (event["event"], event["to_version"], event["actor"]) == ("verified", 1, "cli-test")

    human = run_cli(cli_settings, "models", "verify", "-m", "toy", "--version", "1").stdout
    assert f"verified toy version 1: {verified['rows']} holdout rows re-scored under python " in human
    assert "max abs difference 0 (tolerance 1e-09); it loads in this environment" in human


def test_a_verify_whose_scores_differ_fails_and_leaves_it_refused(settings: Settings, engine: sa.Engine,
                                                                  toy: Spec, trained: TrainResult,
                                                                  tmp_path: Path) -> None:
    _register(engine, toy, trained)
    _fitted_elsewhere(engine, toy, 1)
    stored = stored_sample(engine, "toy", 1)
    assert stored is not None
    stored["scores"][7] += 1e-6  # what a library that predicts differently would give
    _set(engine, toy, 1, holdout_sample=stored)
    cli_settings = dataclasses.replace(settings, specs_dir=write_spec(toy, tmp_path / "specs"))

    result = run_cli(cli_settings, "models", "verify", "-m", "toy", "--version", "1", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = " ".join(result.stderr.split())
    assert line.startswith("error: model 'toy' version 1: re-scoring its ")
    assert "gives scores up to 1e-06 away from those recorded at training (tolerance 1e-09): it stays refused" in line

    with pytest.raises(EnvironmentMismatch, match=f"scikit-learn {OTHER_MINOR}"):
        registry.load(engine, toy, 1)
    assert registry.get_version(engine, "toy", 1).verified_environments == []
    event = registry.events(engine, "toy")[0]
    assert event["event"] == "verify_failed" and event["details"]["max_abs_diff"] == pytest.approx(1e-6, rel=1e-3)
    with pytest.raises(VerificationFailed, match=r"scores up to 1e-06 away .* \(tolerance 1e-09\)"):
        verify_version(engine, toy, 1, actor="bob")
    # the same difference within a wider tolerance is accepted (in-process this time)
    assert verify_version(engine, toy, 1, actor="bob", tolerance=1e-5).max_abs_diff == pytest.approx(1e-6, rel=1e-3)
    assert registry.load(engine, toy, 1).info.version == 1


def test_a_version_without_a_sample_cannot_be_verified(engine: sa.Engine, toy: Spec, trained: TrainResult) -> None:
    _register(engine, toy, trained, sample=False)
    with pytest.raises(RegistryError, match=r"model 'toy' version 1 has no holdout sample to re-score .* retrain"):
        verify_version(engine, toy, 1, actor="bob")
    assert registry.get_version(engine, "toy", 1).verified_environments == []


def test_a_version_without_a_recorded_environment_loads_with_one_warning(
        engine: sa.Engine, toy: Spec, trained: TrainResult, caplog: pytest.LogCaptureFixture) -> None:
    _register(engine, toy, trained)
    _set(engine, toy, 1, environment=None)  # registered before migration 0013
    with caplog.at_level(logging.WARNING, logger="ml_batch.model.registry"):
        registry.load(engine, toy, 1)
        registry.load(engine, toy, 1)
    warned = [r for r in caplog.records if "has no recorded environment" in r.getMessage()]
    assert len(warned) == 1 and "model toy version 1" in warned[0].getMessage()


def test_an_inconsistent_version_warning_at_unpickling_is_logged_not_swallowed(
        engine: sa.Engine, toy: Spec, trained: TrainResult, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import sklearn.base

    with monkeypatch.context() as patched:  # the pickle says another scikit-learn wrote it
        patched.setattr(sklearn.base, "__version__", OTHER_MINOR)
        _register(engine, toy, trained)
    with caplog.at_level(logging.WARNING, logger="ml_batch.model.registry"):
        registry.load(engine, toy, 1)
    [logged] = [r.getMessage() for r in caplog.records if "unpickled under other library versions" in r.getMessage()]
    assert f"from version {OTHER_MINOR} when using version {sklearn.__version__}" in logged


def test_the_sample_reads_back_exactly_through_jsonb(engine: sa.Engine, toy: Spec) -> None:
    x1 = [0.1 + 0.2, 1 / 3, 1e-300, -1.7976931348623157e308, 5e-324, 1e16, 123456789.12345679, math.nan,
          math.inf, -math.inf, None]
    holdout = pd.DataFrame({"x1": pd.Series(x1, dtype=object), "x2": np.arange(len(x1)) * 1e-17,
                            "color": ["red", None, math.nan, "NaN", 3, 3.0, 2.5, True, "inf", "", "blue"]})
    scores = np.array([0.1 + 0.2, 1e-300, 2 / 3, *np.linspace(0, 1, len(x1) - 3)])
    stored = holdout_sample(toy, holdout, scores)
    with engine.connect() as conn:
        back = conn.execute(sa.select(sa.cast(sa.bindparam("s", stored, type_=JSONB), JSONB))).scalar_one()
    sample, original = HoldoutSample.from_dict(back), HoldoutSample.from_dict(stored)
    assert np.array_equal(sample.frame(toy)["x1"], original.frame(toy)["x1"], equal_nan=True)
    assert sample.frame(toy)["x2"].tolist() == holdout["x2"].tolist()
    assert sample.features["color"] == original.features["color"]
    assert np.array_equal(sample.recorded_scores(), scores)

"""Issue 10 row 9: an artifact is trusted only with its HMAC, checked before anything is unpickled, and
`models register` takes only skops files whose types are known, so a file from outside runs no code."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pickle
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
import pytest
import skops.io as sio
import sqlalchemy as sa
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from ml_batch.config import Settings, artifact_key
from ml_batch.errors import ArtifactIntegrityError, ConfigError, FeatureSchemaMismatch, RegistryError
from ml_batch.features import build_pipeline
from ml_batch.model import registry
from ml_batch.promotion.artifacts import register_artifact
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.run.runs import list_runs
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, DAY

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class _Exploit:
    """Unpickling this creates the marker file: proof that code in the artifact ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.marker.write_text, ("code in the artifact ran",))


@pytest.fixture()
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    value = secrets.token_hex(32)
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", value)
    return value


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, key: str):
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, dt.date(2026, 5, 1), days=25, rows_per_day=40)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    return spec


def _substitute(engine: sa.Engine, schema: str, artifact: bytes) -> None:
    """What an attacker with write access to the registry tables does: new bytes and a matching sha256."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(f'UPDATE "{schema}".model_versions SET artifact = :a, artifact_sha256 = :s, '
                    "artifact_size = :n WHERE model_name = 'toy' AND version = 1"),
            {"a": artifact, "s": hashlib.sha256(artifact).hexdigest(), "n": len(artifact)},
        )


def _predictions(engine: sa.Engine, spec: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {spec.predictions.table}")).scalar_one())


def test_a_substituted_artifact_with_a_matching_sha256_is_refused_and_never_runs(
    settings: Settings, engine: sa.Engine, toy, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    _substitute(engine, settings.schema, pickle.dumps(_Exploit(marker)))
    with pytest.raises(ArtifactIntegrityError, match=r"model 'toy' version 1: artifact HMAC-SHA256 is [0-9a-f]{64}, "
                                                     r"expected [0-9a-f]{64} as signed at registration"):
        registry.load(engine, toy, 1)
    assert not marker.exists()
    # The daily job refuses it too: nothing published, the run failed with the reason.
    with pytest.raises(ArtifactIntegrityError):
        score_day(engine, toy, DAY, run_id="after-substitution")
    assert not marker.exists()
    assert _predictions(engine, toy) == 0
    [run] = list_runs(engine, "toy")
    assert run["status"] == "failed" and "artifact HMAC-SHA256" in run["error"]


def test_a_version_signed_elsewhere_names_both_keys(engine: sa.Engine, toy, monkeypatch) -> None:
    signed_with = registry.get_version(engine, "toy", 1).artifact_key_id
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))
    with pytest.raises(ArtifactIntegrityError, match=rf"signed with key {signed_with}, but this process has key "
                                                     r"[0-9a-f]{16} \(ML_BATCH_ARTIFACT_KEY"):
        registry.load(engine, toy, 1)


def test_an_unsigned_version_is_refused(settings: Settings, engine: sa.Engine, toy, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _substitute(engine, settings.schema, pickle.dumps(_Exploit(marker)))
    with engine.begin() as conn:  # a version registered before signing existed (migration 0004)
        conn.execute(sa.text(f'UPDATE "{settings.schema}".model_versions SET artifact_hmac = NULL, '
                             "artifact_key_id = NULL"))
    with pytest.raises(ArtifactIntegrityError, match="model 'toy' version 1 has no HMAC: it was registered "
                                                     "before artifacts were signed"):
        registry.load(engine, toy, 1)
    assert not marker.exists()


def test_the_key_file_is_generated_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ML_BATCH_ARTIFACT_KEY", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first = artifact_key()
    path = tmp_path / "config" / "ml-batch" / "artifact.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first) >= 32
    assert artifact_key() == first
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=rf"{path} has mode 0644: expected 0600"):
        artifact_key()
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", "short")
    with pytest.raises(ConfigError, match="ML_BATCH_ARTIFACT_KEY is 5 bytes long: expected at least 32"):
        artifact_key()


# -- models register ---------------------------------------------------------------------------------------
def _fitted(spec: Any, frame: pd.DataFrame) -> Pipeline:
    rows = frame.iloc[:400]
    return build_pipeline(spec).fit(rows.loc[:, spec.feature_names], rows["y"])


@pytest.fixture()
def toy_frame(settings: Settings, engine: sa.Engine, key: str) -> tuple[Any, pd.DataFrame]:
    spec = toy_spec(settings.schema)
    frame = load_toy_data(engine, settings.schema, dt.date(2026, 5, 1), days=25, rows_per_day=40)
    return spec, frame


def test_register_accepts_a_skops_pipeline_and_signs_it(engine: sa.Engine, toy_frame, tmp_path: Path) -> None:
    spec, frame = toy_frame
    path = tmp_path / "notebook.skops"
    sio.dump(_fitted(spec, frame), path)
    version = register_artifact(engine, spec, path, AS_OF, actor="nb")
    assert (version.version, version.source) == (1, "registered") and version.metrics["roc_auc"] > 0.7
    assert version.artifact_key_id is not None
    assert registry.load(engine, spec, 1).pipeline.predict_proba(frame.loc[:5, spec.feature_names]).shape == (6, 2)


def test_register_refuses_a_pickle_without_loading_it(engine: sa.Engine, toy_frame, tmp_path: Path) -> None:
    spec, _ = toy_frame
    marker = tmp_path / "pwned"
    path = tmp_path / "model.joblib"
    joblib.dump(_Exploit(marker), path)
    with pytest.raises(RegistryError, match=rf"artifact {path} is not a skops file \(a pickle or joblib file\?\): "
                                            "ml-batch never unpickles a file from outside"):
        register_artifact(engine, spec, path, AS_OF, actor="nb")
    assert not marker.exists()
    assert registry.list_versions(engine, "toy") == []


def test_register_refuses_unknown_types_without_loading_them(engine: sa.Engine, toy_frame, tmp_path: Path) -> None:
    spec, frame = toy_frame
    pipeline = _fitted(spec, frame)
    pipeline.steps.insert(0, ("shell", FunctionTransformer(os.system)))
    path = tmp_path / "sneaky.skops"
    sio.dump(pipeline, path)
    with pytest.raises(RegistryError, match=r"holds types ml-batch does not trust: \['posix.system'\] "
                                            r"\(trusted: classes from sklearn, numpy, scipy"):
        register_artifact(engine, spec, path, AS_OF, actor="nb")
    assert registry.list_versions(engine, "toy") == []


@pytest.mark.parametrize(("make", "message"), [
    (lambda spec, frame: {"not": "a model"}, r"is a dict, not a fitted sklearn Pipeline"),
    (lambda spec, frame: build_pipeline(spec), r"is not fitted"),
    (lambda spec, frame: DummyClassifier().fit(pd.DataFrame({"a": [1, 2]}), [0, 1]),
     r"was fitted on columns \['a'\], but the spec's features are \['x1', 'x2', 'color'\]"),
    (lambda spec, frame: build_pipeline(spec).fit(frame.loc[:, ["x2", "x1", "color"]], frame["y"]),
     r"was fitted on columns \['x2', 'x1', 'color'\]"),
])
def test_register_refuses_what_is_not_a_fitted_pipeline_of_the_spec(
    engine: sa.Engine, toy_frame, tmp_path: Path, make, message: str
) -> None:
    spec, frame = toy_frame
    path = tmp_path / "candidate.skops"
    sio.dump(make(spec, frame), path)
    with pytest.raises((RegistryError, FeatureSchemaMismatch), match=message):
        register_artifact(engine, spec, path, AS_OF, actor="nb")
    assert registry.list_versions(engine, "toy") == []


def test_the_cli_refuses_a_wrong_feature_file_in_one_line(settings: Settings, toy_frame, key: str,
                                                          tmp_path: Path) -> None:
    spec, frame = toy_frame
    specs_dir = tmp_path / "specs"
    specs_dir.mkdir()
    (specs_dir / "toy.yaml").write_text(json.dumps(spec.model_dump(mode="json")))
    path = tmp_path / "wrong.skops"
    sio.dump(build_pipeline(spec).fit(frame.loc[:, ["x2", "x1", "color"]], frame["y"]), path)
    env = {**os.environ, "ML_BATCH_DATABASE_URL": settings.database_url or "", "ML_BATCH_SCHEMA": settings.schema,
           "ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(specs_dir), "ML_BATCH_ARTIFACT_KEY": key}
    result = subprocess.run(
        [sys.executable, "-m", "ml_batch.cli", "models", "register", "--model", "toy", "--artifact", str(path),
         "--as-of", AS_OF.isoformat()],
        env=env, capture_output=True, text=True, timeout=300, cwd=REPO, check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: model 'toy': artifact {path} was fitted on columns ['x2', 'x1', 'color']")

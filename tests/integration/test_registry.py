from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import pickle
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings, artifact_key
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import upgrade
from ml_batch.errors import ArtifactIntegrityError, FeatureSchemaMismatch, RegistryError
from ml_batch.model import registry, signing
from ml_batch.model.training import train
from ml_batch.promotion.retrain import train_and_register
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF

pytestmark = pytest.mark.integration


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, dt.date(2026, 5, 1), days=20)
    return spec


def _register(engine: sa.Engine, spec, n: int = 1) -> list[registry.ModelVersion]:
    result = train(engine, spec, AS_OF)
    new = registry.NewVersion(metrics=result.metrics, window=result.window.as_dict(), n_train=result.n_train,
                              n_holdout=result.n_holdout)
    return [registry.register(engine, spec, result.pipeline, new, actor="alice") for _ in range(n)]


def test_register_numbers_versions_and_records_everything(engine: sa.Engine, toy) -> None:
    v1, v2 = _register(engine, toy, 2)
    assert (v1.version, v2.version) == (1, 2)
    assert v1.feature_schema == toy.feature_schema
    assert len(v1.artifact_sha256) == 64 and v1.artifact_size > 0
    assert v1.artifact_key_id == v2.artifact_key_id == signing.key_id(artifact_key())
    assert v1.holdout_end == dt.date(2026, 5, 17) and v1.n_holdout and v1.n_train
    assert v1.metrics["roc_auc"] > 0.7
    assert v1.created_by == "alice" and v1.code_version.startswith("0.1.0")
    assert [e["event"] for e in registry.events(engine, "toy")] == ["registered", "registered"]


def test_promote_is_audited_and_idempotent(engine: sa.Engine, toy) -> None:
    _register(engine, toy, 2)
    move = registry.promote(engine, "toy", 1, actor="bob", reason="first")
    assert (move.from_version, move.to_version, move.changed) == (None, 1, True)
    assert not registry.promote(engine, "toy", 1, actor="bob", reason="again").changed
    move = registry.promote(engine, "toy", 2, actor="carol", reason="better")
    assert (move.from_version, move.to_version) == (1, 2)
    promoted = [e for e in registry.events(engine, "toy") if e["event"] == "promoted"]
    assert [(e["from_version"], e["to_version"], e["actor"], e["reason"]) for e in promoted] == [
        (1, 2, "carol", "better"), (None, 1, "bob", "first"),
    ]
    assert registry.get_version(engine, "toy", "champion").version == 2


def test_promote_unknown_version_names_the_known_ones(engine: sa.Engine, toy) -> None:
    _register(engine, toy)
    with pytest.raises(RegistryError, match=r"model 'toy' has no version 7 \(versions: 1\)"):
        registry.promote(engine, "toy", 7, actor="a", reason="r")


def test_rollback_walks_back_and_is_audited(engine: sa.Engine, toy) -> None:
    _register(engine, toy, 3)
    for v in (1, 2, 3):
        registry.promote(engine, "toy", v, actor="a", reason=f"v{v}")
    assert registry.rollback(engine, "toy", actor="ops", reason="bad scores").to_version == 2
    assert registry.rollback(engine, "toy", actor="ops", reason="still bad").to_version == 1
    with pytest.raises(RegistryError, match="no earlier champion to roll back to"):
        registry.rollback(engine, "toy", actor="ops", reason="again")
    rollbacks = [e for e in registry.events(engine, "toy") if e["event"] == "rollback"]
    assert [(e["from_version"], e["to_version"], e["actor"]) for e in rollbacks] == [(2, 1, "ops"), (3, 2, "ops")]


def test_concurrent_promotions_leave_one_champion_and_a_consistent_trail(engine: sa.Engine, toy) -> None:
    _register(engine, toy, 4)
    barrier = threading.Barrier(4)

    def promote(version: int) -> None:
        barrier.wait()
        registry.promote(engine, "toy", version, actor=f"t{version}", reason="race")

    threads = [threading.Thread(target=promote, args=(v,)) for v in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f"SELECT version FROM \"{toy.source.table.split('.')[0]}\".model_aliases "
            "WHERE model_name = 'toy' AND alias = 'champion'"
        )).all()
    assert len(rows) == 1
    moves = [e for e in reversed(registry.events(engine, "toy")) if e["event"] == "promoted"]
    # Each move starts from where the previous one ended: no lost update in the audit trail.
    assert moves[0]["from_version"] is None
    assert all(later["from_version"] == earlier["to_version"] for earlier, later in itertools.pairwise(moves))
    assert moves[-1]["to_version"] == rows[0][0]


def test_tampered_artifact_is_refused_before_unpickling(
    settings: Settings, engine: sa.Engine, toy, tmp_path: Path
) -> None:
    _register(engine, toy)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.write_text, ("unpickled!",))

    with engine.begin() as conn:
        conn.execute(
            sa.text(f'UPDATE "{settings.schema}".model_versions SET artifact = :a WHERE model_name = \'toy\''),
            {"a": pickle.dumps(Exploit())},
        )
    with pytest.raises(ArtifactIntegrityError, match=r"model 'toy' version 1: artifact sha256 is [0-9a-f]{64}, "
                                                     r"expected [0-9a-f]{64}"):
        registry.load(engine, toy, 1)
    assert not marker.exists()


def test_load_checks_feature_schema_against_the_spec(settings: Settings, engine: sa.Engine, toy) -> None:
    _register(engine, toy)
    assert registry.load(engine, toy, 1).pipeline.predict_proba is not None
    reordered = toy.model_copy(update={"features": list(reversed(toy.features))})
    with pytest.raises(FeatureSchemaMismatch, match="same features in another order"):
        registry.load(engine, reordered, 1)
    fewer = toy.model_copy(update={"features": toy.features[:2]})
    with pytest.raises(FeatureSchemaMismatch, match=r"unexpected \['color:categorical'\]"):
        registry.load(engine, fewer, "1")


def test_unknown_alias_and_model(engine: sa.Engine, toy) -> None:
    with pytest.raises(RegistryError, match="model 'toy' has no registered versions"):
        registry.load(engine, toy, "champion")
    _register(engine, toy)
    with pytest.raises(RegistryError, match="has no alias 'challenger' \\(aliases set: none\\)"):
        registry.load(engine, toy, "challenger")


def test_train_and_register_gates_on_the_same_holdout(engine: sa.Engine, toy) -> None:
    first = train_and_register(engine, toy, AS_OF, actor="ci", promote=True)
    assert first.promoted and first.decision is not None and first.decision.champion_score is None
    second = train_and_register(engine, toy, AS_OF, actor="ci", promote=True)
    # Same data, same estimator: the candidate equals the champion, so it cannot beat it.
    assert second.decision is not None
    assert second.decision.champion_score == pytest.approx(second.decision.candidate_score)
    assert second.promoted == (toy.training.min_improvement == 0)
    strict = toy.model_copy(update={"training": toy.training.model_copy(update={"min_improvement": 0.01})})
    third = train_and_register(engine, strict, AS_OF, actor="ci", promote=True)
    assert not third.promoted and "does not beat champion" in third.decision.reason
    assert registry.get_version(engine, "toy", 3).aliases == []


# -- one JSON-safe rule, one lock-key rule (issue 19) --------------------------------------------------------
def test_a_version_whose_metrics_hold_an_infinity_is_stored_with_the_metric_as_null(engine: sa.Engine, toy) -> None:
    result = train(engine, toy, AS_OF)
    new = registry.NewVersion(metrics={"roc_auc": 0.7, "r2": float("-inf")}, window=result.window.as_dict())
    version = registry.register(engine, toy, result.pipeline, new, actor="alice")
    assert registry.get_version(engine, "toy", version.version).metrics == {"roc_auc": 0.7, "r2": None}
    [registered] = registry.events(engine, "toy")
    assert registered["details"]["metrics"] == {"roc_auc": 0.7, "r2": None}


def test_audit_details_with_non_finite_numbers_are_stored_as_null(engine: sa.Engine, toy) -> None:
    registry.record_event(engine, "toy", "gate_decision", actor="a", reason="r",
                          details={"champion_score": float("inf"), "candidate_score": float("nan"), "n": 3})
    [event] = registry.events(engine, "toy")
    assert event["details"] == {"champion_score": None, "candidate_score": None, "n": 3}


@pytest.fixture()
def other_schema(settings: Settings) -> Iterator[Settings]:
    """A second ml-batch installation in another schema of the same database."""
    other = dataclasses.replace(settings, schema=f"{settings.schema}_b")
    engine = make_engine(other)
    upgrade(engine, other.schema)
    yield other
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{other.schema}" CASCADE'))


def test_a_model_lock_in_one_schema_does_not_block_the_same_model_in_another(
    settings: Settings, engine: sa.Engine, toy, other_schema: Settings,
) -> None:
    engine_b = make_engine(other_schema)
    spec_b = toy_spec(other_schema.schema)
    load_toy_data(engine_b, other_schema.schema, dt.date(2026, 5, 1), days=20)
    _register(engine_b, spec_b)
    # Schema B's promotion gives up after 3 s instead of hanging when a lock it waits for is held.
    impatient_b = sa.create_engine(
        engine.url, connect_args={"options": "-c timezone=UTC -c lock_timeout=3000 -c statement_timeout=10000"},
    ).execution_options(**engine_b.get_execution_options())
    try:
        with engine.begin() as conn_a:
            registry._lock_model(conn_a, "toy")  # schema A's registry holds model "toy"'s lock
            move = registry.promote(impatient_b, "toy", 1, actor="b", reason="other installation")
        assert (move.to_version, move.changed) == (1, True)
        assert registry.aliases(engine_b, "toy") == {"champion": 1}
    finally:
        impatient_b.dispose()


TOY_SOURCE_TYPES = {"id": "bigint", "event_time": "timestamp with time zone", "x1": "double precision",
                    "x2": "double precision", "color": "text"}


def test_a_trained_and_a_registered_version_record_their_source_column_types(engine: sa.Engine, toy,
                                                                             tmp_path: Path) -> None:
    import skops.io as sio

    from ml_batch.features import build_pipeline
    from ml_batch.promotion.artifacts import register_artifact

    trained = train_and_register(engine, toy, AS_OF, actor="alice").version
    assert trained.source_types == TOY_SOURCE_TYPES  # key, date column, features: what scoring compares
    with engine.connect() as conn:
        rows = pd.read_sql(sa.text(f"SELECT * FROM {toy.source.table} LIMIT 200"), conn)
    path = tmp_path / "notebook.skops"
    sio.dump(build_pipeline(toy).fit(rows[toy.feature_names], rows["x1"] > 0), path)
    registered = register_artifact(engine, toy, path, AS_OF, actor="nb")
    assert (registered.source, registered.source_types) == ("registered", TOY_SOURCE_TYPES)
    assert registry.get_version(engine, "toy", trained.version).source_types == TOY_SOURCE_TYPES

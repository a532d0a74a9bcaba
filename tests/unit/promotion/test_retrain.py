"""The retraining outcome (`ml_batch.promotion.retrain.TrainOutcome`): the JSON the retraining DAG returns."""

from __future__ import annotations

import datetime as dt
import json

from ml_batch.model.registry import ModelVersion
from ml_batch.promotion.gate import decide
from ml_batch.promotion.retrain import TrainOutcome


def _version() -> ModelVersion:
    return ModelVersion(
        model_name="toy", version=2, artifact_sha256="ab" * 32, artifact_key_id="0123456789abcdef",
        artifact_size=10, feature_schema=[{"name": "x1", "type": "numeric"}], task="binary",
        estimator="sklearn.linear_model.LogisticRegression", params={}, train_start=dt.date(2026, 5, 1),
        train_end=dt.date(2026, 5, 7), holdout_start=dt.date(2026, 5, 8), holdout_end=dt.date(2026, 5, 10),
        n_train=100, n_holdout=30, metrics={"roc_auc": 0.8}, code_version="0.1.0", spec_sha256="cd" * 32,
        source="trained", created_by="t", created_at=dt.datetime(2026, 5, 20, 12, tzinfo=dt.UTC), tags={},
        aliases=["champion"],
    )


def test_the_outcome_json_holds_the_version_the_action_and_the_gate() -> None:
    decision = decide("roc_auc", 0.8, float("nan"), floor=0.6, min_improvement=0.0)
    data = TrainOutcome(_version(), decision, True, "promoted").as_dict()
    assert set(data) == {"version", "promoted", "action", "gate"}
    assert (data["promoted"], data["action"], data["gate"]["champion_score"]) == (True, "promoted", None)
    assert data["version"]["holdout_end"] == "2026-05-10"
    assert data["version"]["created_at"] == "2026-05-20T12:00:00+00:00"
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_an_outcome_without_the_gate_has_a_null_gate() -> None:
    data = TrainOutcome(_version(), None, False, "registered").as_dict()
    assert (data["gate"], data["action"], data["promoted"]) == (None, "registered", False)

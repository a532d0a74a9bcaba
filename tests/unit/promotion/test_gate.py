"""The promotion gate (`ml_batch.promotion.gate`): floor, then improvement over the champion."""

from __future__ import annotations

import json

from ml_batch.promotion.gate import decide


def test_gate_first_model_promotes_on_floor_alone() -> None:
    assert decide("roc_auc", 0.75, None, floor=0.7, min_improvement=0.01).promote
    rejected = decide("roc_auc", 0.65, None, floor=0.7, min_improvement=0.01)
    assert not rejected.promote and "does not reach the floor 0.7" in rejected.reason


def test_gate_needs_floor_and_improvement() -> None:
    better = decide("roc_auc", 0.80, 0.78, floor=0.7, min_improvement=0.01)
    assert better.promote and better.champion_score == 0.78
    marginal = decide("roc_auc", 0.785, 0.78, floor=0.7, min_improvement=0.01)
    assert not marginal.promote and "does not beat champion 0.7800" in marginal.reason
    assert decide("roc_auc", 0.80, 0.78, floor=0.7, min_improvement=0.01).as_dict()["promote"] is True


def test_gate_messages_read_naturally_without_a_floor() -> None:
    first = decide("roc_auc", 0.75, None, floor=None, min_improvement=0.0)
    assert first.promote and "None" not in first.reason
    assert first.reason == ("no champion yet and no floor (training.min_score) set; "
                            "candidate roc_auc 0.7500 passes on its own")
    undefined = decide("roc_auc", float("nan"), None, floor=None, min_improvement=0.0)
    assert not undefined.promote and "None" not in undefined.reason
    assert undefined.reason == "candidate roc_auc is undefined on the holdout (nan), so it cannot be promoted"
    assert decide("roc_auc", 0.75, None, floor=0.7, min_improvement=0.0).reason == (
        "no champion yet; candidate roc_auc 0.7500 reaches the floor 0.7")


def test_a_decision_with_non_finite_scores_serialises_them_as_null() -> None:
    # JSON (and the audit trail's jsonb) has no infinity or NaN: a score that is no finite number is null.
    decision = decide("r2", 0.5, float("-inf"), floor=None, min_improvement=0.0)
    assert decision.promote
    data = decision.as_dict()
    assert data["champion_score"] is None and data["candidate_score"] == 0.5
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert decide("r2", float("nan"), None, floor=None, min_improvement=0.0).as_dict()["candidate_score"] is None

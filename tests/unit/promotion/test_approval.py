"""The approval request's evidence and the answer's reading (`ml_batch.promotion.approval`), without a database."""

from __future__ import annotations

from typing import Any

from ml_batch.promotion.approval import OPTIONS, TIMEOUT_DEFAULT, ApprovalRequest, ApprovalResponse, request_of


def _train_result(action: str = "awaiting_approval", **evidence: Any) -> dict[str, Any]:
    gate = {"metric": "roc_auc", "candidate_score": 0.8123, "champion_score": 0.79, "champion": 3,
            "n_holdout": 420, "holdout_start": "2026-05-11", "holdout_end": "2026-05-20", "shadow_days": 0,
            "on_approval": "promoted", "reason": "candidate beats champion", "dag_id": "retrain_toy",
            "run_id": "r1", **evidence}
    return {"action": action, "version": {"version": 4}, "evidence": gate}


def test_only_a_candidate_awaiting_approval_has_a_request() -> None:
    assert request_of("toy", _train_result("promoted")) is None
    assert request_of("toy", {"action": "rejected", "version": {"version": 4}, "gate": None}) is None
    request = request_of("toy", _train_result())
    assert request is not None and (request.version, request.champion, request.on_approval) == (4, 3, "promoted")
    assert ApprovalRequest.from_dict({**request.as_dict(), "subject": "x"}) == request


def test_the_body_shows_both_scores_the_holdout_rows_and_the_shadow_days() -> None:
    request = request_of("toy", _train_result())
    assert request is not None and request.subject() == "Approve toy version 4 as champion?"
    body = request.body()
    for text in ("candidate version 4: roc_auc 0.8123", "champion version 3: 0.7900",
                 "holdout rows: 420 (days 2026-05-11 .. 2026-05-20", "shadow days: 0"):
        assert text in body, f"{text!r} not in {body!r}"
    shadowed = request_of("toy", _train_result(on_approval="challenger", shadow_days=7, champion=None))
    assert shadowed is not None and "shadow days: 7" in shadowed.body()
    assert "champion none (first champion)" in shadowed.body()


def test_no_answer_resolves_to_reject_without_a_responder() -> None:
    assert TIMEOUT_DEFAULT == "Reject" and TIMEOUT_DEFAULT in OPTIONS
    # What Airflow's HITL operator returns after the scheduler applied the default on timeout.
    response = ApprovalResponse.of_hitl({"chosen_options": ["Reject"], "params_input": {},
                                         "responded_by_user": None, "responded_at": "2026-05-21T00:00:00"})
    assert response == ApprovalResponse(("Reject",), None)

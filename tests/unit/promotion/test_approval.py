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
    first = request_of("toy", _train_result(champion=None, champion_score=None))
    assert first is not None and "champion none (first champion)" in first.body()


def _shadow_decision(**changes: Any) -> dict[str, Any]:
    """A shadow decision awaiting approval, as `ShadowDecision.as_dict` records it."""
    days = [{"day": f"2026-06-0{d}", "champion_version": 3, "champion_metric": 0.70 + d / 100,
             "challenger_metric": 0.75 + d / 100, "labelled_n": 50} for d in (1, 2, 3)]
    days.append({"day": "2026-06-04", "champion_version": 3, "champion_metric": None, "challenger_metric": None,
                 "labelled_n": None})
    return {"stage": "shadow", "challenger": 5, "champion_now": 3, "metric": "roc_auc", "shadow_days": 4,
            "labelled_days": 3, "shadow_min_labelled_days": 2, "shadow_max_days": 9, "champion_realized": 0.72,
            "challenger_realized": 0.77, "days": days, "dag_id": "retrain_toy", "run_id": "r2",
            "action": "awaiting_approval", "promoted": False, "reason": "challenger 5 realized roc_auc 0.7700 vs "
            "champion 0.7200 on the same rows of 3 labelled shadow days: not worse than the champion", **changes}


def test_a_challenger_awaiting_approval_after_shadow_has_a_request_with_its_labelled_evidence() -> None:
    result = {**_train_result("passed"), "shadow_promotion": _shadow_decision()}
    request = request_of("toy", result)
    assert request is not None and (request.version, request.champion, request.on_approval) == (5, 3, "shadow")
    assert request.subject() == "Approve toy challenger version 5 as champion after 4 shadow days?"
    body = request.body()
    for text in ("challenger version 5: realized roc_auc 0.7700 (mean of 3 labelled shadow days)",
                 "champion version 3: 0.7200 (on the same rows)",
                 "labelled rows: 150 (shadow days 2026-06-01 .. 2026-06-03 with labels)", "shadow days: 4",
                 "Reject (or no answer in time) removes the challenger"):
        assert text in body, f"{text!r} not in {body!r}"
    assert ApprovalRequest.from_dict(request.as_dict()) == request
    for action in ("promoted", "waiting", "demoted"):
        result = {**_train_result("passed"), "shadow_promotion": _shadow_decision(action=action)}
        assert request_of("toy", result) is None


def test_no_answer_resolves_to_reject_without_a_responder() -> None:
    assert TIMEOUT_DEFAULT == "Reject" and TIMEOUT_DEFAULT in OPTIONS
    # What Airflow's HITL operator returns after the scheduler applied the default on timeout.
    response = ApprovalResponse.of_hitl({"chosen_options": ["Reject"], "params_input": {},
                                         "responded_by_user": None, "responded_at": "2026-05-21T00:00:00"})
    assert response == ApprovalResponse(("Reject",), None)

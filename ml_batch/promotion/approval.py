"""A person's approval of a new champion (`training.approval: required`, four eyes).

Two moves make a champion, and with `approval: required` each waits for a person:
- the **gate** (`training.shadow_days` 0): a candidate that beat the champion on the same holdout rows
  (`ml_batch.promotion.retrain`);
- the **shadow** stage (`shadow_days` > 0): a challenger whose realized metric was not worse than the
  champion's on the same labelled rows of its shadow days (`ml_batch.promotion.shadow`). Entering shadow
  does not ask: a challenger is scored beside the champion and publishes nothing.

The retraining DAG asks through Airflow's Human-in-the-loop (its `approval` task); this module is what happens
around the question, without Airflow:

1. `request_of`: the request of a `train` outcome with a move `awaiting_approval` (None without one), with the
   evidence the decision recorded: both scores on the same rows (holdout rows, or the labelled rows of the
   shadow days), their number and days, the shadow days, the champion it was compared with; `subject` and
   `body` are the text the approver reads;
2. `open_request`: the `approval_requested` audit event and alert (once per run and version), so someone
   knows to answer;
3. `decide`: the answer applied. Approved: the `approved` event names the approver (Airflow's
   `responded_by`), then the alias moves the gate called for (`retrain.apply_action`, audited with the
   approver as actor; a challenger's approval makes it champion and removes the challenger alias). Rejected,
   or no answer before `training.approval_timeout` (Airflow applies the default, Reject, with no responder):
   the `approval_rejected` event records who (or `timeout`) and why; the champion stays, and a rejected
   challenger loses its alias (it would otherwise ask again at every retraining). An approval is also refused,
   as `stale`, when the champion (or the challenger) moved since the decision: the scores compared were
   another model's. Nothing here ever moves the champion without a responder.

A retry of the DAG's tasks is harmless: `open_request` and `decide` find the run's event and do not record it
(nor alert) twice; the alias move is idempotent.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from ml_batch.model import registry
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

APPROVE = "Approve"
#: `ApprovalRequest.on_approval` of a challenger's promotion after its shadow days.
SHADOW = "shadow"
REJECT = "Reject"
OPTIONS = (APPROVE, REJECT)
#: What an unanswered request resolves to (Airflow's HITL `defaults`): never an approval.
TIMEOUT_DEFAULT = REJECT

Verdict = Literal["approved", "rejected", "timeout", "stale"]


@dataclass(frozen=True)
class ApprovalRequest:
    """A candidate waiting for a person, with the gate's evidence."""

    model: str
    version: int
    on_approval: str  # the move an approval makes: "promoted" (the gate's candidate) or "shadow" (the challenger)
    metric: str
    candidate_score: float | None
    champion_score: float | None
    champion: int | None
    n_holdout: int
    holdout_start: str
    holdout_end: str
    shadow_days: int
    reason: str
    dag_id: str | None
    run_id: str | None
    labelled_days: int = 0  # "shadow": the shadow days whose labels arrived (the scores are their mean)

    def subject(self) -> str:
        if self.on_approval == SHADOW:
            return (f"Approve {self.model} challenger version {self.version} as champion after {self.shadow_days} "
                    "shadow days?")
        return f"Approve {self.model} version {self.version} as champion?"

    def earned(self) -> str:
        """What it did to be asked about, in a sentence."""
        return "It earned its promotion in shadow" if self.on_approval == SHADOW else "It passed the gate"

    def body(self) -> str:
        """The evidence as Markdown (what Airflow's Required Actions page shows)."""
        champion = ("none (first champion)" if self.champion is None
                    else f"version {self.champion}: {_score(self.champion_score)}")
        if self.on_approval == SHADOW:
            return "\n".join([
                f"**Shadow:** {self.reason}",
                "",
                f"- challenger version {self.version}: realized {self.metric} {_score(self.candidate_score)} (mean "
                f"of {self.labelled_days} labelled shadow days)",
                f"- champion {champion} (on the same rows)",
                f"- labelled rows: {self.n_holdout} (shadow days {self.holdout_start} .. {self.holdout_end} with "
                "labels)",
                f"- shadow days: {self.shadow_days}",
                "",
                "Approve makes the challenger champion; Reject (or no answer in time) removes the challenger and "
                "keeps the champion.",
            ])
        return "\n".join([
            f"**Gate:** {self.reason}",
            "",
            f"- candidate version {self.version}: {self.metric} {_score(self.candidate_score)}",
            f"- champion {champion}",
            f"- holdout rows: {self.n_holdout} (days {self.holdout_start} .. {self.holdout_end}, the same rows "
            "for both)",
            "- shadow days: 0 (it becomes champion at once)",
            "",
            "Approve moves the alias; Reject (or no answer in time) leaves it where it is.",
        ])

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ApprovalRequest:
        """The request back from `as_dict`'s JSON (other keys, such as the subject and body, are ignored; a field
        with a default may be missing)."""
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})


@dataclass(frozen=True)
class ApprovalResponse:
    """The answer: the options chosen and who chose them (None: the timeout's default was applied)."""

    chosen: tuple[str, ...]
    responded_by: dict[str, Any] | None

    @classmethod
    def of_hitl(cls, result: dict[str, Any]) -> ApprovalResponse:
        """From the return value of Airflow's HITL operator (`chosen_options`, `responded_by_user`)."""
        return cls(tuple(result.get("chosen_options") or ()), result.get("responded_by_user"))


@dataclass(frozen=True)
class ApprovalDecision:
    verdict: Verdict
    version: int
    approver: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def request_of(model: str, train_result: dict[str, Any]) -> ApprovalRequest | None:
    """The approval request of the retraining DAG's `train` result: its shadow promotion or its gate's move,
    whichever is awaiting approval (both never are: the gate moves the champion only without shadow days);
    None when neither is."""
    shadow = train_result.get("shadow_promotion") or {}
    if shadow.get("action") == "awaiting_approval":
        return _shadow_request(model, shadow)
    evidence = train_result.get("evidence") or {}
    if train_result.get("action") != "awaiting_approval":
        return None
    return ApprovalRequest(
        model=model, version=int(train_result["version"]["version"]), on_approval=str(evidence["on_approval"]),
        metric=str(evidence["metric"]), candidate_score=evidence["candidate_score"],
        champion_score=evidence["champion_score"], champion=evidence["champion"],
        n_holdout=int(evidence["n_holdout"]), holdout_start=str(evidence["holdout_start"]),
        holdout_end=str(evidence["holdout_end"]), shadow_days=int(evidence["shadow_days"]),
        reason=str(evidence["reason"]), dag_id=evidence.get("dag_id"), run_id=evidence.get("run_id"),
    )


def _shadow_request(model: str, decision: dict[str, Any]) -> ApprovalRequest:
    """The request of a shadow decision awaiting approval (`ShadowDecision.as_dict`): its labelled days' evidence."""
    labelled = [d for d in decision["days"] if d["champion_metric"] is not None and d["challenger_metric"] is not None]
    return ApprovalRequest(
        model=model, version=int(decision["challenger"]), on_approval=SHADOW, metric=str(decision["metric"]),
        candidate_score=decision["challenger_realized"], champion_score=decision["champion_realized"],
        champion=decision["champion_now"], n_holdout=sum(int(d["labelled_n"] or 0) for d in labelled),
        holdout_start=labelled[0]["day"] if labelled else "", holdout_end=labelled[-1]["day"] if labelled else "",
        shadow_days=int(decision["shadow_days"]), reason=str(decision["reason"]), dag_id=decision.get("dag_id"),
        run_id=decision.get("run_id"), labelled_days=int(decision["labelled_days"]),
    )


def open_request(engine: sa.Engine, spec: Spec, request: ApprovalRequest, *, actor: str) -> bool:
    """Record the `approval_requested` event and raise its alert; False (nothing done) when this run did."""
    if _recorded(engine, spec.name, "approval_requested", request) is not None:
        return False
    details = {**_tags(request), **request.as_dict(), "timeout": spec.training.approval_timeout}
    registry.record_event(engine, spec.name, "approval_requested", actor=actor, to_version=request.version,
                          reason=request.subject(), details=details)
    alerts.record(engine, Alert(
        kind="approval_requested", severity="warning", model_name=spec.name, dag_id=request.dag_id,
        run_id=request.run_id, details=details,
        message=f"{request.subject()} {request.earned()} ({request.reason}); approve or reject it in Airflow "
                f"(Required Actions of {request.dag_id}) within {spec.training.approval_timeout}, else it is "
                "rejected",
    ))
    return True


def decide(engine: sa.Engine, spec: Spec, request: ApprovalRequest, response: ApprovalResponse) -> ApprovalDecision:
    """Apply the answer (module docstring): record `approved` then move the alias, or record `approval_rejected`."""
    for event in ("approved", "approval_rejected"):
        done = _recorded(engine, spec.name, event, request)
        if done is not None:  # a retry: the first try decided
            decision = ApprovalDecision(**{k: done["details"][k] for k in ("verdict", "version", "approver",
                                                                             "reason")})
            _move(engine, spec, request, decision)
            return decision
    decision = _verdict(engine, spec, request, response)
    event = "approved" if decision.verdict == "approved" else "approval_rejected"
    registry.record_event(engine, spec.name, event, actor=decision.approver or "timeout",
                          to_version=request.version, reason=decision.reason,
                          details={**_tags(request), **decision.as_dict(), "responded_by": response.responded_by,
                                   "on_approval": request.on_approval})
    _move(engine, spec, request, decision)
    alerts.record(engine, Alert(
        kind="gate_promote" if decision.verdict == "approved" else "gate_reject",
        severity="info" if decision.verdict == "approved" else "warning", model_name=spec.name,
        dag_id=request.dag_id, run_id=request.run_id, details={**decision.as_dict(), **request.as_dict()},
        message=f"version {request.version}: {decision.reason}",
    ))
    return decision


def _verdict(engine: sa.Engine, spec: Spec, request: ApprovalRequest, response: ApprovalResponse) -> ApprovalDecision:
    who = response.responded_by
    approver = str(who.get("name") or who.get("id")) if who else None
    if approver is None:
        return ApprovalDecision("timeout", request.version, None,
                                f"not approved within training.approval_timeout ({spec.training.approval_timeout}): "
                                f"rejected by default, {_rejected_outcome(request)}")
    if APPROVE not in response.chosen:
        return ApprovalDecision("rejected", request.version, approver,
                                f"rejected by {approver}: {_rejected_outcome(request)}")
    current = registry.aliases(engine, spec.name)
    champion = current.get(registry.CHAMPION)
    if champion != request.champion:
        return ApprovalDecision("stale", request.version, approver,
                                f"approved by {approver}, but the champion moved from {request.champion} to "
                                f"{champion} since they were compared: nothing moved, retrain to compare again")
    challenger = current.get(registry.CHALLENGER)
    if request.on_approval == SHADOW and challenger != request.version:
        return ApprovalDecision("stale", request.version, approver,
                                f"approved by {approver}, but the challenger is now {challenger}, not version "
                                f"{request.version}: nothing moved")
    return ApprovalDecision("approved", request.version, approver, f"approved by {approver}: champion is now "
                                                                   f"version {request.version}")


def _move(engine: sa.Engine, spec: Spec, request: ApprovalRequest, decision: ApprovalDecision) -> None:
    """The aliases the decision moves (idempotent: a retry finishes what the first try began)."""
    # Imported here: the DAG factory reads this module's options at parse time, and retrain imports pandas.
    from ml_batch.promotion.retrain import apply_action
    from ml_batch.promotion.shadow import promote_challenger, reject_challenger

    approved = decision.verdict == "approved" and decision.approver is not None
    reason = f"{request.reason}; {decision.reason}"
    if request.on_approval == SHADOW:
        if approved:
            promote_challenger(engine, spec.name, request.version, actor=str(decision.approver), reason=reason)
        elif decision.verdict in ("rejected", "timeout"):
            reject_challenger(engine, spec.name, actor=decision.approver or "timeout", reason=reason,
                              version=request.version)
    elif approved:
        apply_action(engine, spec, request.version, request.on_approval,
                     f"{request.reason}; approved by {decision.approver}", str(decision.approver))


def _tags(request: ApprovalRequest) -> dict[str, Any]:
    return {"dag_id": request.dag_id, "run_id": request.run_id, "version": request.version}


def _recorded(engine: sa.Engine, model: str, event: str, request: ApprovalRequest) -> dict[str, Any] | None:
    if request.run_id is None:
        return None
    return registry.find_event(engine, model, event, {"run_id": request.run_id, "version": request.version})


def _rejected_outcome(request: ApprovalRequest) -> str:
    return "the challenger is removed, the champion stays" if request.on_approval == SHADOW else "nothing moved"


def _score(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"

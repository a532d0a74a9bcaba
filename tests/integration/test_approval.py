"""A person approves a challenger's promotion after its shadow days (`training.approval: required` with
`training.shadow_days` > 0), against real PostgreSQL: entering shadow does not ask, the promotion does, and
nothing moves the champion without a responder. The gate's own approval through Airflow's API is
tests/e2e/test_approval.py."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.tables import shadow_comparisons
from ml_batch.model import registry
from ml_batch.ops import alerts
from ml_batch.promotion.approval import ApprovalResponse, decide, open_request, request_of
from ml_batch.promotion.retrain import train_and_register
from ml_batch.promotion.shadow import promote_after_shadow
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration

TRAINING = {"window_days": 10, "holdout_days": 3, "metric": "roc_auc", "min_score": 0.6, "shadow_days": 3,
            "shadow_min_labelled_days": 2, "shadow_max_days": 7, "approval": "required", "approval_timeout": "1h"}
ALICE = {"id": "7", "name": "alice"}


@pytest.fixture()
def shadowed(settings: Settings, engine: sa.Engine) -> tuple[Spec, int, int]:
    """Champion version 1 (set by hand), and version 2 that passed the gate into shadow: (spec, champion,
    challenger)."""
    spec = toy_spec(settings.schema, delay_days=1, training=TRAINING)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=60, delay_days=1)
    champion = train_and_register(engine, spec, AS_OF, actor="t").version.version
    registry.promote(engine, "toy", champion, actor="t", reason="bootstrap champion")
    gated = train_and_register(engine, spec, AS_OF, actor="t", promote=True, dag_id="retrain_toy", run_id="r0")
    return spec, champion, gated.version.version


def _shadow_days(engine: sa.Engine, champion: int, challenger: int, *, better: bool = True) -> None:
    """Three shadow days with labels: the challenger's realized metric above (or below) the champion's."""
    with engine.begin() as conn:
        for offset in (1, 2, 3):
            conn.execute(shadow_comparisons.insert().values(
                model_name="toy", partition_date=AS_OF + dt.timedelta(days=offset), challenger_version=challenger,
                champion_version=champion, n=60, metric="roc_auc", champion_metric=0.80,
                challenger_metric=0.85 if better else 0.70, labelled_n=60))


def _awaiting(engine: sa.Engine, spec: Spec, run_id: str = "r1") -> dict:
    decision = promote_after_shadow(engine, spec, actor="t", dag_id="retrain_toy", run_id=run_id)
    assert decision is not None
    return {"action": "passed", "version": {"version": 99}, "shadow_promotion": decision.as_dict()}


def _events(engine: sa.Engine, *names: str) -> list[dict]:
    return [e for e in registry.events(engine, "toy") if e["event"] in names]


def test_entering_shadow_does_not_ask_but_the_promotion_after_it_waits_for_an_approver(
        engine: sa.Engine, shadowed: tuple[Spec, int, int]) -> None:
    spec, champion, challenger = shadowed
    assert registry.aliases(engine, "toy") == {"champion": champion, "challenger": challenger}
    assert not _events(engine, "approval_requested"), "entering shadow asked for an approval"

    _shadow_days(engine, champion, challenger)
    alerted = len(alerts.recent(engine, "toy"))  # the gate's alert of the move into shadow
    result = _awaiting(engine, spec)
    assert result["shadow_promotion"]["action"] == "awaiting_approval"
    assert "waits for a person's approval" in result["shadow_promotion"]["reason"]
    assert registry.aliases(engine, "toy") == {"champion": champion, "challenger": challenger}, "moved unapproved"
    assert len(alerts.recent(engine, "toy")) == alerted, "a promotion alert before anyone approved"
    assert _awaiting(engine, spec) == result, "a retry of the run decided again"

    request = request_of("toy", result)
    assert request is not None and (request.version, request.champion, request.on_approval) == (
        challenger, champion, "shadow")
    assert (request.candidate_score, request.champion_score, request.n_holdout) == pytest.approx((0.85, 0.80, 180))
    assert open_request(engine, spec, request, actor="airflow:r1")
    assert not open_request(engine, spec, request, actor="airflow:r1"), "asked twice in one run"
    [asked] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "approval_requested"]
    assert f"challenger version {challenger} as champion after 3 shadow days? It earned its promotion in shadow" in (
        asked["message"])

    decision = decide(engine, spec, request, ApprovalResponse(("Approve",), ALICE))
    assert decision.verdict == "approved" and decision.approver == "alice"
    assert registry.aliases(engine, "toy") == {"champion": challenger}
    [approved] = _events(engine, "approved")
    assert approved["actor"] == "alice" and approved["to_version"] == challenger
    promoted = [e for e in _events(engine, "promoted") if e["alias"] == "champion"]
    assert promoted[0]["to_version"] == challenger and promoted[0]["actor"] == "alice"  # newest first
    assert decide(engine, spec, request, ApprovalResponse(("Approve",), ALICE)) == decision
    assert len(_events(engine, "approved")) == 1


@pytest.mark.parametrize(("response", "actor"), [(ApprovalResponse(("Reject",), ALICE), "alice"),
                                                 (ApprovalResponse(("Reject",), None), "timeout")])
def test_a_rejected_or_unanswered_challenger_loses_its_alias_and_the_champion_stays(
        engine: sa.Engine, shadowed: tuple[Spec, int, int], response: ApprovalResponse, actor: str) -> None:
    spec, champion, challenger = shadowed
    _shadow_days(engine, champion, challenger)
    request = request_of("toy", _awaiting(engine, spec))
    assert request is not None
    decision = decide(engine, spec, request, response)
    assert decision.verdict == ("rejected" if actor == "alice" else "timeout")
    assert "the challenger is removed, the champion stays" in decision.reason
    assert registry.aliases(engine, "toy") == {"champion": champion}
    [rejected] = _events(engine, "approval_rejected")
    assert rejected["actor"] == actor
    [removed] = _events(engine, "alias_removed")
    assert removed["alias"] == "challenger" and removed["actor"] == actor
    # The next retraining decides on no challenger: it does not ask again.
    assert promote_after_shadow(engine, spec, actor="t", dag_id="retrain_toy", run_id="r2") is None


def test_an_approval_after_the_challenger_changed_is_stale_and_moves_nothing(
        engine: sa.Engine, shadowed: tuple[Spec, int, int]) -> None:
    spec, champion, challenger = shadowed
    _shadow_days(engine, champion, challenger)
    request = request_of("toy", _awaiting(engine, spec))
    assert request is not None
    other = train_and_register(engine, spec, AS_OF - dt.timedelta(days=1), actor="t").version.version
    registry.promote(engine, "toy", other, alias=registry.CHALLENGER, actor="ops", reason="another challenger")
    decision = decide(engine, spec, request, ApprovalResponse(("Approve",), ALICE))
    assert decision.verdict == "stale" and f"the challenger is now {other}" in decision.reason
    assert registry.aliases(engine, "toy") == {"champion": champion, "challenger": other}


def test_a_worse_challenger_is_demoted_without_asking(engine: sa.Engine, shadowed: tuple[Spec, int, int]) -> None:
    spec, champion, challenger = shadowed
    _shadow_days(engine, champion, challenger, better=False)
    result = _awaiting(engine, spec)
    assert result["shadow_promotion"]["action"] == "demoted" and request_of("toy", result) is None
    assert registry.aliases(engine, "toy") == {"champion": champion}

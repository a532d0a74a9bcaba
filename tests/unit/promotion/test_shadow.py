"""The shadow decision (`ml_batch.promotion.shadow.decide_shadow`): a pure function of the evidence and the
spec's training rules, and the one JSON of the decision."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from ml_batch.promotion.shadow import ChampionMove, ShadowDay, ShadowDecision, ShadowEvidence, decide_shadow
from ml_batch.spec import TrainingSpec

RULES = TrainingSpec(metric="roc_auc", shadow_days=5, shadow_min_labelled_days=2, shadow_max_days=7)
FIRST = dt.date(2026, 5, 21)


def _days(n: int, *, labelled: int = 0, champion: float = 0.75, challenger: float = 0.8) -> tuple[ShadowDay, ...]:
    """`n` shadow days, the first `labelled` of them with both realized metrics."""
    return tuple(ShadowDay(day=FIRST + dt.timedelta(days=i), champion_version=1,
                           champion_metric=champion if i < labelled else None,
                           challenger_metric=challenger if i < labelled else None,
                           labelled_n=60 if i < labelled else None) for i in range(n))


def _evidence(days: tuple[ShadowDay, ...], moved: ChampionMove | None = None) -> ShadowEvidence:
    return ShadowEvidence(challenger=2, champion_now=1, days=days, champion_moved=moved)


def test_no_decision_before_shadow_days() -> None:
    assert decide_shadow(_evidence(_days(4, labelled=4)), RULES, delay_days=3) is None


def test_promoted_on_enough_labelled_days_when_not_worse() -> None:
    decision = decide_shadow(_evidence(_days(5, labelled=2, champion=0.7, challenger=0.7)), RULES, delay_days=3)
    assert decision is not None and decision.action == "promoted" and decision.promoted
    assert (decision.shadow_days, decision.labelled_days) == (5, 2)
    assert decision.champion_realized == pytest.approx(0.7) and decision.challenger_realized == pytest.approx(0.7)
    assert decision.reason == ("challenger 2 realized roc_auc 0.7000 vs champion 0.7000 on the same rows of 2 "
                               "labelled shadow days: not worse than the champion")


def test_demoted_when_worse_on_the_labelled_days() -> None:
    decision = decide_shadow(_evidence(_days(5, labelled=3, champion=0.8, challenger=0.6)), RULES, delay_days=3)
    assert decision is not None and decision.action == "demoted" and not decision.promoted
    assert decision.reason.endswith("worse than the champion")


def test_waits_for_labels_then_is_demoted_after_shadow_max_days() -> None:
    waiting = decide_shadow(_evidence(_days(6, labelled=1)), RULES, delay_days=3)
    assert waiting is not None and waiting.action == "waiting"
    assert waiting.reason == ("challenger 2 has 1 of the 2 labelled shadow days it needs after 6 shadow days; "
                              "demoted after 7 shadow days without them")
    demoted = decide_shadow(_evidence(_days(7, labelled=1)), RULES, delay_days=3)
    assert demoted is not None and demoted.action == "demoted"
    assert demoted.reason == ("challenger 2 has 1 of the 2 labelled shadow days it needs after 7 shadow days "
                              "(training.shadow_max_days 7); labels arrive 3 days after a day")


def test_a_champion_moved_during_shadow_cancels_whatever_the_evidence() -> None:
    moved = ChampionMove(event="promoted", to_version=4, actor="ops", reason="hotfix")
    decision = decide_shadow(_evidence(_days(1, labelled=1), moved), RULES, delay_days=3)
    assert decision is not None and decision.action == "cancelled"
    assert "the champion was set to version 4 by ops (promoted: hotfix)" in decision.reason
    removed = decide_shadow(_evidence(_days(5, labelled=5), dataclasses.replace(moved, to_version=None)), RULES, 3)
    assert removed is not None and removed.action == "cancelled" and "the champion was removed by ops" in removed.reason


def test_the_decision_json_round_trips_and_holds_no_non_finite_number() -> None:
    decision = decide_shadow(_evidence(_days(5, labelled=2, champion=float("nan"))), RULES, delay_days=3)
    assert decision is not None
    tagged = dataclasses.replace(decision, dag_id="retrain", run_id="r1")
    data = tagged.as_dict()
    assert data["champion_realized"] is None, "a mean that is no number is null in JSON"
    assert (data["stage"], data["run_id"], data["days"][0]["day"]) == ("shadow", "r1", "2026-05-21")
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert ShadowDecision.from_dict(data).as_dict() == data
    assert "run_id" not in decision.as_dict() and "dag_id" not in decision.as_dict()

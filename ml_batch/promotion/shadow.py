"""Shadow promotion: decide on the challenger once it has been scored in shadow for `training.shadow_days` days.

Three steps, so the rule can be read (and unit-tested) apart from the database:

1. `gather_evidence`: the challenger's shadow days (`shadow_comparisons`: both models' realized metric on the
   same labelled rows of each day) and the last move of the champion alias since the challenger was set;
2. `decide_shadow`, a pure function of that evidence and the spec's `training` rules:
   - **cancelled** when the champion was moved by anyone else after the challenger was set: its shadow
     comparison was against another champion;
   - **promoted** with at least `training.shadow_min_labelled_days` shadow days whose labels have arrived,
     when the challenger's mean realized metric over them is not worse than the champion's on the same rows;
   - **demoted** when it is worse, or when `training.shadow_max_days` shadow days have passed without enough
     labelled ones;
   - **waiting** otherwise (nothing changes);
   - no decision (None) while there are fewer than `training.shadow_days` shadow days;
   - with `training.approval: required`, a promotion is **awaiting_approval** instead: nothing moves, and the
     retraining DAG asks a person (`ml_batch.promotion.approval`), who approves (`promote_challenger`) or
     rejects (`reject_challenger`: the challenger alias is removed; no answer in time is a rejection);
3. applying it: the decision is an audit event (`gate_decision` with `stage: shadow`) with its evidence, the
   metric per shadow day, recorded before the aliases move (promoted: champion, then the challenger alias
   removed; demoted and cancelled: the challenger alias removed) and an alert is raised (not for waiting).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from ml_batch.db.tables import shadow_comparisons
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.model.metrics import is_better
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.spec import Spec, TrainingSpec

logger = logging.getLogger(__name__)

ShadowAction = Literal["promoted", "demoted", "cancelled", "waiting", "awaiting_approval"]


@dataclass(frozen=True)
class ShadowDay:
    """One day the challenger was scored in shadow, with both models' realized metric once labels arrived."""

    day: dt.date
    champion_version: int
    champion_metric: float | None
    challenger_metric: float | None
    labelled_n: int | None

    @property
    def labelled(self) -> bool:
        """Whether both models have a realized metric for the day (its labels have arrived)."""
        return self.champion_metric is not None and self.challenger_metric is not None

    def as_dict(self) -> dict[str, Any]:
        """The day as the decision's evidence records it (the day as ISO text)."""
        return {"day": self.day.isoformat(), "champion_version": self.champion_version,
                "champion_metric": self.champion_metric, "challenger_metric": self.challenger_metric,
                "labelled_n": self.labelled_n}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowDay:
        """The day back from `as_dict`'s JSON."""
        return cls(day=dt.date.fromisoformat(data["day"]), champion_version=data["champion_version"],
                   champion_metric=data["champion_metric"], challenger_metric=data["challenger_metric"],
                   labelled_n=data["labelled_n"])


@dataclass(frozen=True)
class ChampionMove:
    """A move of the champion alias, as the audit trail recorded it."""

    event: str
    to_version: int | None
    actor: str
    reason: str


@dataclass(frozen=True)
class ShadowEvidence:
    """What the shadow decision is made on."""

    challenger: int
    champion_now: int | None
    days: tuple[ShadowDay, ...]
    champion_moved: ChampionMove | None  # the last move of the champion since the challenger was set


@dataclass(frozen=True)
class ShadowDecision:
    """The decision on a challenger, with the evidence it was made on (one serialisation: `as_dict`)."""

    action: ShadowAction
    reason: str
    challenger: int
    champion_now: int | None
    metric: str
    shadow_days: int  # shadow days so far
    labelled_days: int
    shadow_min_labelled_days: int
    shadow_max_days: int
    champion_realized: float | None
    challenger_realized: float | None
    days: tuple[ShadowDay, ...]
    dag_id: str | None = None
    run_id: str | None = None  # with a run, `dag_id` and `run_id` are part of the JSON

    @property
    def promoted(self) -> bool:
        """Whether the challenger is promoted to champion."""
        return self.action == "promoted"

    def as_dict(self) -> dict[str, Any]:
        """The decision as JSON: the audit event's details (JSON-safe: a mean that is no number is null)."""
        run_tags = {"dag_id": self.dag_id, "run_id": self.run_id} if self.run_id is not None else {}
        return dict(json_safe({
            "stage": "shadow", "challenger": self.challenger, "champion_now": self.champion_now,
            "metric": self.metric, "shadow_days": self.shadow_days, "labelled_days": self.labelled_days,
            "shadow_min_labelled_days": self.shadow_min_labelled_days, "shadow_max_days": self.shadow_max_days,
            "champion_realized": self.champion_realized, "challenger_realized": self.challenger_realized,
            "days": [d.as_dict() for d in self.days], **run_tags,
            "action": self.action, "promoted": self.promoted, "reason": self.reason,
        }))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShadowDecision:
        """The decision back from `as_dict`'s JSON (such as a recorded audit event's details)."""
        return cls(
            action=data["action"], reason=data["reason"], challenger=data["challenger"],
            champion_now=data["champion_now"], metric=data["metric"], shadow_days=data["shadow_days"],
            labelled_days=data["labelled_days"], shadow_min_labelled_days=data["shadow_min_labelled_days"],
            shadow_max_days=data["shadow_max_days"], champion_realized=data["champion_realized"],
            challenger_realized=data["challenger_realized"],
            days=tuple(ShadowDay.from_dict(d) for d in data["days"]),
            dag_id=data.get("dag_id"), run_id=data.get("run_id"),
        )


def promote_after_shadow(engine: sa.Engine, spec: Spec, *, actor: str, dag_id: str | None = None,
                         run_id: str | None = None) -> ShadowDecision | None:
    """Decide on the challenger once it has been scored in shadow for `training.shadow_days` days, and apply
    the decision (see the module docstring).

    Args:
        engine: The ml-batch database.
        spec: The model's spec (its `training` holds the shadow rules).
        actor: Who decides (recorded with the audit event and the alias moves).
        dag_id: The DAG that runs this, if any.
        run_id: The DAG run, if any: a retry of the same run returns the decision that run recorded instead of
            deciding again.

    Returns:
        The decision, or None when there is no challenger or fewer than `shadow_days` shadow days.
    """
    if run_id is not None:
        recorded = registry.find_event(engine, spec.name, "gate_decision",
                                       {"dag_id": dag_id, "run_id": run_id, "stage": "shadow"})
        if recorded is not None:
            return ShadowDecision.from_dict(recorded["details"])
    current = registry.aliases(engine, spec.name)
    challenger = current.get(registry.CHALLENGER)
    if challenger is None or spec.training.shadow_days == 0:
        return None
    evidence = gather_evidence(engine, spec.name, challenger, current.get(registry.CHAMPION))
    decision = decide_shadow(evidence, spec.training, spec.labels.delay_days)
    if decision is None:
        logger.info("%s challenger %d has %d of %d shadow days", spec.name, challenger, len(evidence.days),
                    spec.training.shadow_days)
        return None
    if run_id is not None:
        decision = dataclasses.replace(decision, dag_id=dag_id, run_id=run_id)
    if decision.promoted and spec.training.approval == "required":
        decision = dataclasses.replace(decision, action="awaiting_approval", reason=(
            f"{decision.reason}; waits for a person's approval (training.approval: required)"))
    _apply(engine, spec.name, decision, actor)
    return decision


def gather_evidence(engine: sa.Engine, model: str, challenger: int, champion_now: int | None) -> ShadowEvidence:
    """The challenger's shadow days, oldest first, and the last move of the champion since it was set.

    Args:
        engine: The ml-batch database.
        model: The model's name.
        challenger: The challenger's version.
        champion_now: The champion's version now (None without one).

    Returns:
        The evidence `decide_shadow` decides on.
    """
    return ShadowEvidence(challenger=challenger, champion_now=champion_now,
                          days=_shadow_days(engine, model, challenger),
                          champion_moved=_last_champion_move(engine, model, challenger))


def decide_shadow(evidence: ShadowEvidence, training: TrainingSpec, delay_days: int) -> ShadowDecision | None:
    """The decision on a challenger from its evidence (pure; the rules are in the module docstring).

    Args:
        evidence: The challenger's shadow days and the champion's last move since it was set.
        training: The spec's training rules (`metric`, `shadow_days` > 0, `shadow_min_labelled_days`,
            `shadow_max_days`).
        delay_days: The spec's `labels.delay_days` (named in the reason of a demotion for lack of labels).

    Returns:
        The decision, or None while there are fewer than `training.shadow_days` shadow days (and the champion
        was not moved).
    """
    labelled = [d for d in evidence.days if d.labelled]
    champion_mean = _mean([d.champion_metric for d in labelled if d.champion_metric is not None])
    challenger_mean = _mean([d.challenger_metric for d in labelled if d.challenger_metric is not None])
    verdict = _verdict(evidence, len(labelled), champion_mean, challenger_mean, training, delay_days)
    if verdict is None:
        return None
    action, reason = verdict
    return ShadowDecision(
        action=action, reason=reason, challenger=evidence.challenger, champion_now=evidence.champion_now,
        metric=training.metric, shadow_days=len(evidence.days), labelled_days=len(labelled),
        shadow_min_labelled_days=training.shadow_min_labelled_days, shadow_max_days=training.shadow_max_days,
        champion_realized=champion_mean, challenger_realized=challenger_mean, days=evidence.days,
    )


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _verdict(evidence: ShadowEvidence, labelled: int, champion_mean: float | None, challenger_mean: float | None,
             training: TrainingSpec, delay_days: int) -> tuple[ShadowAction, str] | None:
    challenger, days, metric = evidence.challenger, len(evidence.days), training.metric
    needed = training.shadow_min_labelled_days
    if evidence.champion_moved is not None:
        return "cancelled", _cancelled_reason(challenger, evidence.champion_moved)
    if days < training.shadow_days:
        return None
    if labelled >= needed and champion_mean is not None and challenger_mean is not None:
        better = is_better(metric, challenger_mean, champion_mean, 0.0)
        return ("promoted" if better else "demoted"), (
            f"challenger {challenger} realized {metric} {challenger_mean:.4f} vs champion "
            f"{champion_mean:.4f} on the same rows of {labelled} labelled shadow days: "
            + ("not worse than the champion" if better else "worse than the champion"))
    if days >= training.shadow_max_days:
        return "demoted", (
            f"challenger {challenger} has {labelled} of the {needed} labelled shadow days it needs after {days} "
            f"shadow days (training.shadow_max_days {training.shadow_max_days}); labels arrive {delay_days} days "
            "after a day")
    return "waiting", (
        f"challenger {challenger} has {labelled} of the {needed} labelled shadow days it needs after {days} "
        f"shadow days; demoted after {training.shadow_max_days} shadow days without them")


def _cancelled_reason(challenger: int, move: ChampionMove) -> str:
    now = f"set to version {move.to_version}" if move.to_version is not None else "removed"
    return (f"automatic promotion of challenger {challenger} cancelled: the champion was {now} by "
            f"{move.actor} ({move.event}: {move.reason}) during its shadow period, so its shadow "
            "comparison was against another champion; promote it by hand if it should still replace it")


def _apply(engine: sa.Engine, model: str, decision: ShadowDecision, actor: str) -> None:
    """Record the decision, then move the aliases it calls for and alert (nothing moves while waiting)."""
    action, reason, challenger = decision.action, decision.reason, decision.challenger
    details = decision.as_dict()
    registry.record_event(engine, model, "gate_decision", actor=actor, from_version=decision.champion_now,
                          to_version=challenger, reason=f"{action}: {reason}", details=details)
    if action == "promoted":
        promote_challenger(engine, model, challenger, actor=actor, reason=reason)
    elif action in ("demoted", "cancelled"):
        reject_challenger(engine, model, actor=actor, reason=reason)
    if action not in ("waiting", "awaiting_approval"):  # the request's own alert says a person must answer
        alerts.record(engine, Alert(
            kind="gate_promote" if action == "promoted" else "gate_reject",
            severity="info" if action == "promoted" else "warning",
            message=(f"challenger {challenger} {action} after {decision.shadow_days} shadow days"
                     f"{f' (the last on {decision.days[-1].day})' if decision.days else ''}: {reason}"),
            model_name=model, partition_date=decision.days[-1].day if decision.days else None,
            dag_id=decision.dag_id, run_id=decision.run_id,
            details={k: v for k, v in details.items() if k != "days"},
        ))
    logger.info("%s shadow decision on challenger %d: %s (%s)", model, challenger, action, reason)


def promote_challenger(engine: sa.Engine, model: str, challenger: int, *, actor: str, reason: str) -> None:
    """The challenger becomes champion and the challenger alias is removed (both audited; a retry that finds
    them done changes nothing)."""
    registry.promote(engine, model, challenger, actor=actor, reason=reason)
    registry.remove_alias(engine, model, registry.CHALLENGER, actor=actor, reason="promoted to champion")


def reject_challenger(engine: sa.Engine, model: str, *, actor: str, reason: str, version: int | None = None) -> None:
    """The challenger alias is removed (audited; nothing when it is gone, or when `version` is given and the alias
    points at another version by now); the champion stays."""
    if version is not None and registry.aliases(engine, model).get(registry.CHALLENGER) != version:
        return
    registry.remove_alias(engine, model, registry.CHALLENGER, actor=actor, reason=reason)


def _shadow_days(engine: sa.Engine, model: str, challenger: int) -> tuple[ShadowDay, ...]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(shadow_comparisons.c.partition_date, shadow_comparisons.c.champion_version,
                      shadow_comparisons.c.champion_metric, shadow_comparisons.c.challenger_metric,
                      shadow_comparisons.c.labelled_n)
            .where(shadow_comparisons.c.model_name == model, shadow_comparisons.c.challenger_version == challenger)
            .order_by(shadow_comparisons.c.partition_date)
        ).all()
    return tuple(ShadowDay(day=r.partition_date, champion_version=r.champion_version,
                           champion_metric=r.champion_metric, challenger_metric=r.challenger_metric,
                           labelled_n=r.labelled_n) for r in rows)


def _last_champion_move(engine: sa.Engine, model: str, challenger: int) -> ChampionMove | None:
    """The last move of the champion alias made after `challenger` became challenger (the last time it did)."""
    set_at = [e["id"] for e in registry.alias_history(engine, model, registry.CHALLENGER)
              if e["event"] == "promoted" and e["to_version"] == challenger]
    since = set_at[-1] if set_at else 0
    moves = [e for e in registry.alias_history(engine, model, registry.CHAMPION) if e["id"] > since]
    if not moves:
        return None
    last = moves[-1]
    return ChampionMove(event=last["event"], to_version=last["to_version"], actor=last["actor"],
                        reason=last["reason"])

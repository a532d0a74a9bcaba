"""Retraining: train → register → gate → promote (or shadow), the job the CLI and the retraining DAG share.

`train_and_register` is a chain of small steps, each returning a value:

1. `_candidate`: the version this run registered already (a retry), or a freshly trained and registered one;
2. `_gate_record`: the gate decision this run recorded already, or a new one: the current champion scored on
   the candidate's holdout rows (the same rows, not just the same days), `gate.decide`, the action, all
   written to the audit trail before anything is applied;
3. `apply_action`: the alias move the action calls for (idempotent, so a retry finishes what a first try began);
4. `_alert`: one `gate_promote` / `gate_reject` alert per run and version.

With `training.approval: required` a candidate that would become champion is `awaiting_approval` instead: the
decision records the move it waits for (`on_approval`: promoted) and the champion it was gated against, nothing
moves and no gate alert is raised; `ml_batch.promotion.approval` asks a person and applies the answer. With
shadow days the candidate becomes challenger at once (shadow scoring publishes nothing); its promotion after the
shadow days is what waits (`ml_batch.promotion.shadow`).

A supported tree ensemble is compiled to native code as it is registered (`ml_batch.model.compiled`, proven on
the holdout it was evaluated on); compiling never fails training: what it found is recorded with the version.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa

from ml_batch.db.spec_check import require_spec_db, source_column_types
from ml_batch.db.tables import alerts as alert_rows
from ml_batch.model import registry, verify
from ml_batch.model.compiled import compiled_fields
from ml_batch.model.metrics import shared_class_scores
from ml_batch.model.registry import ModelVersion, NewVersion
from ml_batch.model.training import (
    TrainingWindow,
    TrainResult,
    class_names,
    labels_of,
    load_training_set,
    metrics_of,
    predict_scores,
    train,
    window_for,
)
from ml_batch.monitoring.profile import reference_profile
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.promotion.gate import GateDecision, decide
from ml_batch.run.shard import available_cores
from ml_batch.spec import Spec
from ml_batch.validation.suite import suite_of

logger = logging.getLogger(__name__)

# "passed": the gate passed, but a challenger is still in shadow, so the candidate stays registered only.
# "awaiting_approval": the gate passed and `training.approval` is required: a person decides the move.
TrainAction = Literal["registered", "promoted", "challenger", "passed", "rejected", "awaiting_approval"]


@dataclass(frozen=True)
class TrainOutcome:
    """A registered candidate and, when asked, the gate's decision and what was done with it."""

    version: ModelVersion
    decision: GateDecision | None
    promoted: bool
    action: TrainAction
    evidence: dict[str, Any] | None = None  # the gate decision's audit details (None without the gate)

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON (what the retraining DAG's task returns); a candidate awaiting approval adds the
        gate's `evidence` (what `ml_batch.promotion.approval.request_of` reads)."""
        waits = self.action == "awaiting_approval"
        return {"version": self.version.as_dict(), "promoted": self.promoted, "action": self.action,
                "gate": self.decision.as_dict() if self.decision else None,
                **({"evidence": self.evidence} if waits else {})}


@dataclass(frozen=True)
class GateRecord:
    """A gate decision as the audit trail holds it: the decision, its action, and the event's details."""

    decision: GateDecision
    action: TrainAction
    challenger: int | None  # the challenger in shadow when the gate ran
    details: dict[str, Any]


def train_and_register(
    engine: sa.Engine, spec: Spec, as_of: dt.date, *, actor: str, promote: bool = False,
    dag_id: str | None = None, run_id: str | None = None, spec_file: Path | None = None,
) -> TrainOutcome:
    """Train on the labels known on `as_of` and register the result; with `promote`, run the gate.

    The gate scores the current champion on the candidate's holdout rows (the same rows, not just the same
    days). Its decision, both scores and the holdout window are written to the registry's audit trail
    whatever the outcome; a rejected candidate stays registered with its scores and raises a `gate_reject`
    alert, never an exception. With `training.shadow_days` > 0 a passing candidate becomes `challenger`
    (scored in shadow by the daily DAG) instead of champion.

    With a `run_id` (a DAG run) a retry is harmless: the version is tagged with the run, and a retry of the
    same run reuses that version instead of training another, and reuses its recorded gate decision instead
    of gating it again (which could gate it against itself, once promoted).

    Args:
        engine: The ml-batch database.
        spec: The model's spec.
        as_of: Train on the labels known at the end of this day (UTC).
        actor: Who trains (recorded with the version and every audit event).
        promote: Run the gate and apply its decision.
        dag_id: The DAG that runs this, if any (tags, audit details and alerts name it).
        run_id: The DAG run, if any: what makes a retry reuse the run's version and decision.
        spec_file: The spec's file, if it was read from one: errors name it, and a relative `validation.suite`
            is resolved against its folder (the training window is validated as a scoring day is:
            `ml_batch.model.training.load_training_set`).

    Returns:
        The registered version, the gate's decision (None without `promote`) and the action taken.
    """
    require_spec_db(engine, spec, origin=spec_file)
    suite_file = suite_of(spec, spec_file)
    run_tags = _run_tags(dag_id, run_id)
    version, result = _candidate(engine, spec, as_of, actor, run_tags, suite_file)
    if not promote:
        return TrainOutcome(version, None, False, "registered")
    record = _recorded_gate(engine, spec, version, run_tags) if result is None else None
    if record is None:
        record = _gate_record(engine, spec, as_of, version, result, actor, run_tags, suite_file)
    apply_action(engine, spec, version.version, record.action, record.decision.reason, actor)
    if record.action != "awaiting_approval" and not (
            run_id is not None and _gate_alerted(engine, spec.name, run_id, version.version)):
        _alert(engine, spec, version.version, record, as_of, dag_id, run_id)
    return TrainOutcome(registry.get_version(engine, spec.name, version.version), record.decision,
                        record.action == "promoted", record.action, record.details)


def _run_tags(dag_id: str | None, run_id: str | None) -> dict[str, Any]:
    """The tags that name a DAG run on its version, its audit events and its alerts (none outside a run)."""
    return {"dag_id": dag_id, "run_id": run_id} if run_id is not None else {}


def _candidate(engine: sa.Engine, spec: Spec, as_of: dt.date, actor: str, run_tags: dict[str, Any],
               suite_file: Path | None) -> tuple[ModelVersion, TrainResult | None]:
    """The version this run registered already (and no training result), or a newly trained one."""
    reused = registry.tagged_version(engine, spec.name, run_tags) if run_tags else None
    if reused is not None:
        logger.info("%s version %d was registered by run %s already: reusing it", spec.name, reused.version,
                    run_tags["run_id"])
        return reused, None
    result = train(engine, spec, as_of, suite_file=suite_file)
    return _register_trained(engine, spec, result, as_of, actor, run_tags), result


def _register_trained(engine: sa.Engine, spec: Spec, result: TrainResult, as_of: dt.date, actor: str,
                      run_tags: dict[str, Any]) -> ModelVersion:
    new = NewVersion(
        metrics=result.metrics, source="trained", window=result.window.as_dict(), n_train=result.n_train,
        n_holdout=result.n_holdout,
        tags={"as_of": as_of.isoformat(), "fit_seconds": round(result.fit_seconds, 2), **run_tags},
        # Built from the valid rows only: `result.train`/`holdout` are without the rows scoring would quarantine.
        profile=reference_profile(spec, result.pipeline, result.train, result.holdout, result.holdout_scores),
        n_excluded=result.n_excluded, exclusions=result.exclusions,
        holdout_sample=verify.holdout_sample(spec, result.holdout, result.holdout_scores),
        source_types=source_column_types(engine, spec), classes=result.classes, class_counts=result.class_counts,
        **compiled_fields(result.pipeline, spec, result.holdout, result.holdout_scores, nthread=available_cores()),
    )
    return registry.register(engine, spec, result.pipeline, new, actor=actor)


def _recorded_gate(engine: sa.Engine, spec: Spec, version: ModelVersion,
                   run_tags: dict[str, Any]) -> GateRecord | None:
    """The gate decision this run recorded for `version` already (a retry), or None."""
    if not run_tags:
        return None
    recorded = registry.find_event(engine, spec.name, "gate_decision", {**run_tags, "stage": "gate"})
    if recorded is None or recorded["to_version"] != version.version:
        return None
    details = dict(recorded["details"])
    return GateRecord(GateDecision.from_dict(details), details["action"], details["challenger"], details)


def _gate_record(engine: sa.Engine, spec: Spec, as_of: dt.date, version: ModelVersion, result: TrainResult | None,
                 actor: str, run_tags: dict[str, Any], suite_file: Path | None) -> GateRecord:
    """Gate `version` against the champion on its holdout rows, and record the decision (before applying it)."""
    holdout, window = ((result.holdout, result.window) if result is not None
                       else _holdout(engine, spec, as_of, suite_file))
    decision = _gate(engine, spec, holdout, version, result)
    current = registry.aliases(engine, spec.name)
    challenger = current.get(registry.CHALLENGER)
    action = _action(spec, decision, challenger)
    # Only a move of the champion waits for a person; a challenger goes into shadow at once, and its promotion
    # after the shadow days is the one that asks (`ml_batch.promotion.shadow`).
    waits = spec.training.approval == "required" and action == "promoted"
    details = {"stage": "gate", **decision.as_dict(), **window.as_dict(), "n_holdout": len(holdout), **run_tags,
               "action": "awaiting_approval" if waits else action, "challenger": challenger,
               **({"on_approval": action, "champion": current.get(registry.CHAMPION),
                   "shadow_days": spec.training.shadow_days} if waits else {})}
    action = details["action"]
    registry.record_event(engine, spec.name, "gate_decision", actor=actor, to_version=version.version,
                          reason=f"{action}: {decision.reason}", details=details)
    return GateRecord(decision, action, challenger, details)


def _holdout(engine: sa.Engine, spec: Spec, as_of: dt.date,
             suite_file: Path | None) -> tuple[pd.DataFrame, TrainingWindow]:
    """The holdout rows of the window as of `as_of`: those a version trained then was evaluated on (without
    the rows scoring would quarantine, as at training)."""
    window = window_for(spec, as_of)
    return load_training_set(engine, spec, window, suite_file=suite_file).holdout, window


def _metric(metrics: dict[str, Any], metric: str) -> float:
    value = metrics.get(metric)
    return float("nan") if value is None else float(value)


def _gate(engine: sa.Engine, spec: Spec, holdout: pd.DataFrame, version: ModelVersion,
          result: TrainResult | None) -> GateDecision:
    """The candidate's recorded holdout metric against the champion's on the same rows; multiclass models that
    know different classes are both judged over the union of their classes (`metrics.shared_class_scores`)."""
    metric = spec.training.metric
    candidate_score = _metric(version.metrics, metric)
    champion_score: float | None = None
    if registry.CHAMPION in registry.aliases(engine, spec.name):
        champion = registry.load(engine, spec, registry.CHAMPION)
        scores = predict_scores(champion.pipeline, holdout, spec)
        champion_score = metrics_of(spec, champion.pipeline, holdout, scores).get(metric, float("nan"))
        champion_classes = class_names(champion.pipeline) if spec.model.task == "multiclass" else None
        if champion_classes is not None and champion_classes != version.classes:
            own = (result.holdout_scores if result is not None
                   else predict_scores(registry.load(engine, spec, version.version).pipeline, holdout, spec))
            candidate_score, champion_score = shared_class_scores(
                metric, labels_of(holdout, spec), (own, version.classes or []), (scores, champion_classes))
    return decide(metric, candidate_score, champion_score,
                  floor=spec.training.min_score, min_improvement=spec.training.min_improvement)


def _action(spec: Spec, decision: GateDecision, challenger: int | None) -> TrainAction:
    if not decision.promote:
        return "rejected"
    if spec.training.shadow_days == 0:
        return "promoted"
    # A challenger still in shadow keeps its place: replacing it at every retraining would restart its
    # shadow period each time, and with labels that arrive late no challenger would ever have evidence.
    return "challenger" if challenger is None else "passed"


def apply_action(engine: sa.Engine, spec: Spec, version: int, action: str, reason: str, actor: str) -> None:
    """Move the alias `action` calls for (`promoted`: champion, `challenger`: challenger; any other: none).
    Applied after the decision is recorded, and idempotent: a retry finishes what the first try began."""
    if action == "promoted":
        registry.promote(engine, spec.name, version, actor=actor, reason=f"gate: {reason}")
    elif action == "challenger":
        registry.promote(engine, spec.name, version, alias=registry.CHALLENGER, actor=actor,
                         reason=f"gate passed; shadow for {spec.training.shadow_days} days before promotion")


def _gate_alerted(engine: sa.Engine, model: str, run_id: str, version: int) -> bool:
    """Whether run `run_id` has already raised the gate alert of `version` (a retry raises it once)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(alert_rows).where(
                alert_rows.c.model_name == model, alert_rows.c.run_id == run_id,
                alert_rows.c.kind.in_(["gate_promote", "gate_reject"]),
                alert_rows.c.details.contains({"version": version}))
        ).scalar_one() > 0


def _alert(engine: sa.Engine, spec: Spec, version: int, record: GateRecord, as_of: dt.date, dag_id: str | None,
           run_id: str | None) -> None:
    """The gate's alert, naming the day the candidate was trained as of and the decision's reason."""
    rejected = record.action == "rejected"
    waits = (f" (stays registered: challenger {record.challenger} is still in shadow)"
             if record.action == "passed" else "")
    alerts.record(engine, Alert(
        kind="gate_reject" if rejected else "gate_promote", severity="warning" if rejected else "info",
        message=f"version {version}, trained on the labels known on {as_of}, {record.action}: "
                f"{record.decision.reason}{waits}",
        model_name=spec.name, partition_date=as_of, dag_id=dag_id, run_id=run_id,
        details={**record.details, "version": version},
    ))

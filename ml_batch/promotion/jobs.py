"""Whole jobs shared by the CLI and the DAGs: train → register → gate → promote (or shadow), register an
outside artifact, and promote a challenger whose shadow period is over.

An artifact from outside (a notebook) is a skops file, never a pickle: skops reads it as data and
rebuilds only types ml-batch trusts (classes of scikit-learn, NumPy and SciPy, and whatever ml-batch's own
pipeline for the spec refers to, such as the functions of `ml_batch.features`), so a file that names
anything else is refused before any of it is loaded, and no code from the file runs. Pickles cannot be
checked that way: unpickling is what runs their code.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ml_batch.db.tables import alerts as alert_rows
from ml_batch.db.tables import shadow_comparisons
from ml_batch.errors import RegistryError, TrainingError
from ml_batch.features import build_pipeline
from ml_batch.model import registry
from ml_batch.model.metrics import evaluate, is_better
from ml_batch.model.registry import ModelVersion, NewVersion
from ml_batch.model.training import (
    TrainingWindow,
    TrainResult,
    labels_of,
    load_labelled,
    predict_scores,
    split,
    train,
    window_for,
)
from ml_batch.monitoring.profile import reference_profile
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert
from ml_batch.promotion.gate import GateDecision, decide
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """A registered candidate and, when asked, the gate's decision and what was done with it."""

    version: ModelVersion
    decision: GateDecision | None
    promoted: bool
    action: str  # "registered" | "promoted" | "challenger" | "passed" (a challenger is in shadow) | "rejected"

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version.as_dict(), "promoted": self.promoted, "action": self.action,
                "gate": self.decision.as_dict() if self.decision else None}


def train_and_register(
    engine: sa.Engine, spec: Spec, as_of: dt.date, *, actor: str, promote: bool = False,
    dag_id: str | None = None, run_id: str | None = None,
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
    """
    run_tags = {"dag_id": dag_id, "run_id": run_id} if run_id is not None else {}
    reused = registry.tagged_version(engine, spec.name, run_tags) if run_tags else None
    result: TrainResult | None = None
    if reused is not None:
        logger.info("%s version %d was registered by run %s already: reusing it", spec.name, reused.version, run_id)
        version = reused
    else:
        result = train(engine, spec, as_of)
        version = _register_trained(engine, spec, result, as_of, actor, run_tags)
    if not promote:
        return TrainOutcome(version, None, False, "registered")
    recorded = (registry.find_event(engine, spec.name, "gate_decision", {**run_tags, "stage": "gate"})
                if reused is not None else None)
    if recorded is not None and recorded["to_version"] == version.version:
        decision, action = _recorded_decision(recorded["details"]), str(recorded["details"]["action"])
        details = dict(recorded["details"])
    else:
        holdout, window = (result.holdout, result.window) if result is not None else _holdout(engine, spec, as_of)
        candidate_score = _metric(version.metrics, spec.training.metric)
        decision = _gate(engine, spec, holdout, candidate_score)
        details = {"stage": "gate", **decision.as_dict(), **window.as_dict(), "n_holdout": len(holdout), **run_tags}
        challenger = registry.aliases(engine, spec.name).get(registry.CHALLENGER)
        action = _action(spec, decision, challenger)
        details.update(action=action, challenger=challenger)
        registry.record_event(engine, spec.name, "gate_decision", actor=actor, to_version=version.version,
                              reason=f"{action}: {decision.reason}", details=details)
    # Applied after the decision is recorded, and idempotent: a retry finishes what the first try began.
    if action == "promoted":
        registry.promote(engine, spec.name, version.version, actor=actor, reason=f"gate: {decision.reason}")
    elif action == "challenger":
        registry.promote(engine, spec.name, version.version, alias=registry.CHALLENGER, actor=actor,
                         reason=f"gate passed; shadow for {spec.training.shadow_days} days before promotion")
    if not (run_id is not None and _gate_alerted(engine, spec.name, run_id, version.version)):
        waits = (f" (stays registered: challenger {details['challenger']} is still in shadow)"
                 if action == "passed" else "")
        alerts.record(engine, Alert(
            kind="gate_reject" if action == "rejected" else "gate_promote",
            severity="warning" if action == "rejected" else "info",
            message=f"version {version.version} {action}: {decision.reason}{waits}",
            model_name=spec.name, dag_id=dag_id, run_id=run_id, details={**details, "version": version.version},
        ))
    return TrainOutcome(registry.get_version(engine, spec.name, version.version), decision,
                        action == "promoted", action)


def _action(spec: Spec, decision: GateDecision, challenger: int | None) -> str:
    if not decision.promote:
        return "rejected"
    if spec.training.shadow_days == 0:
        return "promoted"
    # A challenger still in shadow keeps its place: replacing it at every retraining would restart its
    # shadow period each time, and with labels that arrive late no challenger would ever have evidence.
    return "challenger" if challenger is None else "passed"


def _recorded_decision(details: dict[str, Any]) -> GateDecision:
    """The gate decision as the audit trail recorded it (undefined scores were stored as null)."""
    return GateDecision(
        promote=bool(details["promote"]), metric=str(details["metric"]),
        candidate_score=float("nan") if details["candidate_score"] is None else float(details["candidate_score"]),
        champion_score=details["champion_score"], floor=details["floor"],
        min_improvement=float(details["min_improvement"]), reason=str(details["reason"]),
    )


def _gate_alerted(engine: sa.Engine, model: str, run_id: str, version: int) -> bool:
    """Whether run `run_id` has already raised the gate alert of `version` (a retry raises it once)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(alert_rows).where(
                alert_rows.c.model_name == model, alert_rows.c.run_id == run_id,
                alert_rows.c.kind.in_(["gate_promote", "gate_reject"]),
                alert_rows.c.details.contains({"version": version}))
        ).scalar_one() > 0


def _metric(metrics: dict[str, Any], metric: str) -> float:
    value = metrics.get(metric)
    return float("nan") if value is None else float(value)


def _holdout(engine: sa.Engine, spec: Spec, as_of: dt.date) -> tuple[pd.DataFrame, TrainingWindow]:
    """The holdout rows of the window as of `as_of`: those a version trained then was evaluated on."""
    window = window_for(spec, as_of)
    return split(load_labelled(engine, spec, window), window)[1], window


def _register_trained(engine: sa.Engine, spec: Spec, result: TrainResult, as_of: dt.date, actor: str,
                      run_tags: dict[str, Any]) -> ModelVersion:
    new = NewVersion(
        metrics=result.metrics, source="trained", window=result.window.as_dict(), n_train=result.n_train,
        n_holdout=result.n_holdout,
        tags={"as_of": as_of.isoformat(), "fit_seconds": round(result.fit_seconds, 2), **run_tags},
        profile=reference_profile(spec, result.pipeline, result.train, result.holdout, result.holdout_scores),
    )
    return registry.register(engine, spec, result.pipeline, new, actor=actor)


def _gate(engine: sa.Engine, spec: Spec, holdout: pd.DataFrame, candidate_score: float) -> GateDecision:
    metric = spec.training.metric
    champion_score: float | None = None
    if registry.CHAMPION in registry.aliases(engine, spec.name):
        champion = registry.load(engine, spec, registry.CHAMPION)
        scores = predict_scores(champion.pipeline, holdout, spec)
        champion_score = evaluate(spec.model.task, labels_of(holdout, spec), scores).get(metric, float("nan"))
    return decide(metric, candidate_score, champion_score,
                  floor=spec.training.min_score, min_improvement=spec.training.min_improvement)


def promote_after_shadow(engine: sa.Engine, spec: Spec, *, actor: str, dag_id: str | None = None,
                         run_id: str | None = None) -> dict[str, Any] | None:
    """Decide on the challenger once it has been scored in shadow for `training.shadow_days` days.

    - **cancelled** (challenger alias removed, warning alert) when the champion was moved by anyone else
      after the challenger was set: its shadow comparison was against another champion;
    - **promoted** with at least `training.shadow_min_labelled_days` shadow days whose labels have arrived,
      when the challenger's mean realized metric over them is not worse than the champion's on the same rows;
    - **demoted** (alias removed, warning alert) when it is worse, or when `training.shadow_max_days` shadow
      days have passed without enough labelled ones;
    - **waiting** otherwise (nothing changes).

    Each decision is an audit event (`gate_decision` with `stage: shadow`) with its evidence: the metric per
    shadow day. With a `run_id`, a retry of the same run returns the decision that run recorded instead of
    deciding again.
    Returns the decision, or None when there is no challenger or fewer than `shadow_days` shadow days.
    """
    run_tags = {"dag_id": dag_id, "run_id": run_id} if run_id is not None else {}
    if run_tags:
        recorded = registry.find_event(engine, spec.name, "gate_decision", {**run_tags, "stage": "shadow"})
        if recorded is not None:
            return dict(recorded["details"])
    current = registry.aliases(engine, spec.name)
    challenger = current.get(registry.CHALLENGER)
    if challenger is None or spec.training.shadow_days == 0:
        return None
    training, metric = spec.training, spec.training.metric
    moved = _champion_moves_since_challenger(engine, spec.name, challenger)
    rows = _shadow_days(engine, spec.name, challenger)
    evidence = [{"day": r["partition_date"].isoformat(), "champion_version": r["champion_version"],
                 "champion_metric": r["champion_metric"], "challenger_metric": r["challenger_metric"],
                 "labelled_n": r["labelled_n"]} for r in rows]
    labelled = [r for r in rows if r["champion_metric"] is not None and r["challenger_metric"] is not None]
    champion_mean = sum(r["champion_metric"] for r in labelled) / len(labelled) if labelled else None
    challenger_mean = sum(r["challenger_metric"] for r in labelled) / len(labelled) if labelled else None
    details: dict[str, Any] = {
        "stage": "shadow", "challenger": challenger, "champion_now": current.get(registry.CHAMPION), "metric": metric,
        "shadow_days": len(rows), "labelled_days": len(labelled), "shadow_min_labelled_days":
        training.shadow_min_labelled_days, "shadow_max_days": training.shadow_max_days,
        "champion_realized": champion_mean, "challenger_realized": challenger_mean, "days": evidence, **run_tags,
    }
    if moved:
        last = moved[-1]
        now = f"set to version {last['to_version']}" if last["to_version"] is not None else "removed"
        action = "cancelled"
        reason = (f"automatic promotion of challenger {challenger} cancelled: the champion was {now} by "
                  f"{last['actor']} ({last['event']}: {last['reason']}) during its shadow period, so its shadow "
                  "comparison was against another champion; promote it by hand if it should still replace it")
    elif len(rows) < training.shadow_days:
        logger.info("%s challenger %d has %d of %d shadow days", spec.name, challenger, len(rows),
                    training.shadow_days)
        return None
    elif len(labelled) >= training.shadow_min_labelled_days:
        assert champion_mean is not None and challenger_mean is not None
        better = is_better(metric, challenger_mean, champion_mean, 0.0)
        action = "promoted" if better else "demoted"
        reason = (f"challenger {challenger} realized {metric} {challenger_mean:.4f} vs champion "
                  f"{champion_mean:.4f} on the same rows of {len(labelled)} labelled shadow days: "
                  + ("not worse than the champion" if better else "worse than the champion"))
    elif len(rows) >= training.shadow_max_days:
        action = "demoted"
        reason = (f"challenger {challenger} has {len(labelled)} of the {training.shadow_min_labelled_days} "
                  f"labelled shadow days it needs after {len(rows)} shadow days (training.shadow_max_days "
                  f"{training.shadow_max_days}); labels arrive {spec.labels.delay_days} days after a day")
    else:
        action = "waiting"
        reason = (f"challenger {challenger} has {len(labelled)} of the {training.shadow_min_labelled_days} "
                  f"labelled shadow days it needs after {len(rows)} shadow days; demoted after "
                  f"{training.shadow_max_days} shadow days without them")
    details.update(action=action, promoted=action == "promoted", reason=reason)
    registry.record_event(engine, spec.name, "gate_decision", actor=actor, from_version=current.get(
        registry.CHAMPION), to_version=challenger, reason=f"{action}: {reason}", details=details)
    if action == "promoted":
        registry.promote(engine, spec.name, challenger, actor=actor, reason=reason)
        registry.remove_alias(engine, spec.name, registry.CHALLENGER, actor=actor, reason="promoted to champion")
    elif action in ("demoted", "cancelled"):
        registry.remove_alias(engine, spec.name, registry.CHALLENGER, actor=actor, reason=reason)
    if action != "waiting":
        alerts.record(engine, Alert(
            kind="gate_promote" if action == "promoted" else "gate_reject",
            severity="info" if action == "promoted" else "warning",
            message=f"challenger {challenger} {action} after {len(rows)} shadow days: {reason}",
            model_name=spec.name, dag_id=dag_id, run_id=run_id, details={k: v for k, v in details.items()
                                                                         if k != "days"},
        ))
    logger.info("%s shadow decision on challenger %d: %s (%s)", spec.name, challenger, action, reason)
    return details


def _shadow_days(engine: sa.Engine, model: str, challenger: int) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(shadow_comparisons).where(shadow_comparisons.c.model_name == model,
                                                shadow_comparisons.c.challenger_version == challenger)
            .order_by(shadow_comparisons.c.partition_date)
        ).mappings().all()
    return [dict(r) for r in rows]


def _champion_moves_since_challenger(engine: sa.Engine, model: str, challenger: int) -> list[dict[str, Any]]:
    """Moves of the champion alias made after `challenger` became challenger (the last time it did)."""
    set_at = [e["id"] for e in registry.alias_history(engine, model, registry.CHALLENGER)
              if e["event"] == "promoted" and e["to_version"] == challenger]
    since = set_at[-1] if set_at else 0
    return [e for e in registry.alias_history(engine, model, registry.CHAMPION) if e["id"] > since]


def register_artifact(
    engine: sa.Engine, spec: Spec, artifact: Path, as_of: dt.date, *, actor: str
) -> ModelVersion:
    """Register a pipeline trained elsewhere (a notebook, saved with `skops.io.dump`), after the same checks a
    trained one passes.

    The file must be a skops file holding only trusted types (see the module docstring) and a fitted
    pipeline over exactly the spec's features; it is then evaluated on the spec's holdout window as of
    `as_of`, so its recorded metrics are comparable with trained versions, and signed like any version. Its
    drift reference is profiled from the window's training days (the notebook's own data is not known).
    """
    pipeline = load_outside_artifact(spec, artifact)
    registry.check_pipeline_schema(spec, pipeline, f"artifact {artifact}")
    window = window_for(spec, as_of)
    train_part, holdout = split(load_labelled(engine, spec, window), window)
    if holdout.empty:
        raise TrainingError(
            f"model {spec.name!r}: no labelled holdout rows in {window.holdout_start}..{window.end} "
            f"to check artifact {artifact} on"
        )
    scores = predict_scores(pipeline, holdout, spec)
    metrics = evaluate(spec.model.task, labels_of(holdout, spec), scores)
    reference = train_part if not train_part.empty else holdout
    new = NewVersion(
        metrics=metrics,
        source="registered",
        window={k: v for k, v in window.as_dict().items() if k.startswith("holdout")},
        n_holdout=len(holdout),
        tags={"artifact_file": artifact.name, "as_of": as_of.isoformat()},
        profile=reference_profile(spec, pipeline, reference, holdout, scores),
    )
    return registry.register(engine, spec, pipeline, new, actor=actor)


# Classes from these packages may be rebuilt from a skops file from outside (functions may not, unless
# ml-batch's own pipeline uses them: a function is what a FunctionTransformer would call on the data).
TRUSTED_CLASS_PACKAGES = ("sklearn", "numpy", "scipy")


def load_outside_artifact(spec: Spec, artifact: Path) -> Any:
    """The object in a skops file, rebuilt only if every type it names is trusted; no code from it runs."""
    import skops.io as sio  # only `models register` needs it

    if not artifact.is_file():
        raise RegistryError(f"artifact {artifact} does not exist or is not a file")
    if not _is_skops_file(artifact):
        raise RegistryError(
            f"artifact {artifact} is not a skops file (a pickle or joblib file?): ml-batch never unpickles a "
            "file from outside, because unpickling runs whatever code the file contains; save the fitted "
            "pipeline with skops.io.dump(pipeline, 'model.skops') and register that file"
        )
    try:
        named = sio.get_untrusted_types(file=artifact)
    except Exception as exc:  # a damaged or foreign zip: any failure to read its schema means "unusable"
        raise RegistryError(f"artifact {artifact} is not a readable skops file: {exc}") from exc
    # What ml-batch's own (unfitted) pipeline for this spec refers to: its functions and estimator.
    own = set(sio.get_untrusted_types(data=sio.dumps(build_pipeline(spec))))
    refused = sorted(name for name in named if name not in own and not _trusted_class(name))
    if refused:
        raise RegistryError(
            f"artifact {artifact} holds types ml-batch does not trust: {refused} (trusted: classes from "
            f"{', '.join(TRUSTED_CLASS_PACKAGES)} and what ml-batch's own pipeline for model {spec.name!r} uses: "
            f"{sorted(own)}); nothing was loaded"
        )
    try:
        return sio.load(artifact, trusted=list(named))
    except Exception as exc:  # skops raises many types for malformed content; re-raised as one error
        raise RegistryError(f"artifact {artifact} cannot be loaded with skops: {exc}") from exc


def _is_skops_file(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "schema.json" in archive.namelist()


def _trusted_class(name: str) -> bool:
    """Whether `name` is a class of a trusted package; resolved only inside those packages (importing a
    module of any other package could itself run code)."""
    module_name, _, attr = name.rpartition(".")
    if module_name.split(".")[0] not in TRUSTED_CLASS_PACKAGES:
        return False
    try:
        return isinstance(getattr(importlib.import_module(module_name), attr), type)
    except (ImportError, AttributeError):
        return False

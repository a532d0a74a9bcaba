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

import sqlalchemy as sa

from ml_batch import alerts, registry
from ml_batch.alerts import Alert
from ml_batch.db.tables import shadow_comparisons
from ml_batch.drift import build_profile
from ml_batch.errors import RegistryError, TrainingError
from ml_batch.features import build_pipeline
from ml_batch.gate import GateDecision, decide
from ml_batch.metrics import evaluate, is_better
from ml_batch.registry import ModelVersion, NewVersion
from ml_batch.spec import Spec
from ml_batch.training import TrainResult, labels_of, load_labelled, predict_scores, split, train, window_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """A registered candidate and, when asked, the gate's decision and what was done with it."""

    version: ModelVersion
    decision: GateDecision | None
    promoted: bool
    action: str  # "registered" | "promoted" | "challenger" | "rejected"

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
    """
    result = train(engine, spec, as_of)
    version = _register_trained(engine, spec, result, as_of, actor)
    if not promote:
        return TrainOutcome(version, None, False, "registered")
    decision = _gate(engine, spec, result)
    details = {**decision.as_dict(), **result.window.as_dict(), "n_holdout": result.n_holdout}
    if not decision.promote:
        action = "rejected"
    elif spec.training.shadow_days > 0:
        action = "challenger"
    else:
        action = "promoted"
    registry.record_event(engine, spec.name, "gate_decision", actor=actor, to_version=version.version,
                          reason=f"{action}: {decision.reason}", details={**details, "action": action})
    if action == "promoted":
        registry.promote(engine, spec.name, version.version, actor=actor, reason=f"gate: {decision.reason}")
    elif action == "challenger":
        registry.promote(engine, spec.name, version.version, alias=registry.CHALLENGER, actor=actor,
                         reason=f"gate passed; shadow for {spec.training.shadow_days} days before promotion")
    alerts.record(engine, Alert(
        kind="gate_reject" if action == "rejected" else "gate_promote",
        severity="warning" if action == "rejected" else "info",
        message=f"version {version.version} {action}: {decision.reason}",
        model_name=spec.name, dag_id=dag_id, run_id=run_id, details=details,
    ))
    return TrainOutcome(registry.get_version(engine, spec.name, version.version), decision,
                        action == "promoted", action)


def _register_trained(engine: sa.Engine, spec: Spec, result: TrainResult, as_of: dt.date, actor: str) -> ModelVersion:
    new = NewVersion(
        metrics=result.metrics, source="trained", window=result.window.as_dict(), n_train=result.n_train,
        n_holdout=result.n_holdout, tags={"as_of": as_of.isoformat(), "fit_seconds": round(result.fit_seconds, 2)},
        profile=result.profile,
    )
    return registry.register(engine, spec, result.pipeline, new, actor=actor)


def _gate(engine: sa.Engine, spec: Spec, result: TrainResult) -> GateDecision:
    metric = spec.training.metric
    champion_score: float | None = None
    if registry.CHAMPION in registry.aliases(engine, spec.name):
        champion = registry.load(engine, spec, registry.CHAMPION)
        scores = predict_scores(champion.pipeline, result.holdout, spec)
        champion_score = evaluate(spec.model.task, labels_of(result.holdout, spec), scores).get(metric, float("nan"))
    return decide(metric, result.metrics.get(metric, float("nan")), champion_score,
                  floor=spec.training.min_score, min_improvement=spec.training.min_improvement)


def promote_after_shadow(engine: sa.Engine, spec: Spec, *, actor: str) -> dict[str, Any] | None:
    """Promote the challenger once it has been scored in shadow for `training.shadow_days` days.

    Where labels have arrived for shadow days, the challenger's realized metric must not be worse than the
    champion's on those same rows; otherwise it is demoted (alias removed). Returns what was done, or None
    when there is no challenger or its shadow period is not over.
    """
    current = registry.aliases(engine, spec.name)
    challenger = current.get(registry.CHALLENGER)
    if challenger is None or spec.training.shadow_days == 0:
        return None
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(shadow_comparisons).where(shadow_comparisons.c.model_name == spec.name,
                                                shadow_comparisons.c.challenger_version == challenger)
        ).mappings().all()
    if len(rows) < spec.training.shadow_days:
        logger.info("%s challenger %d has %d of %d shadow days", spec.name, challenger, len(rows),
                    spec.training.shadow_days)
        return None
    metric = spec.training.metric
    labelled = [r for r in rows if r["champion_metric"] is not None and r["challenger_metric"] is not None]
    champion_mean = sum(r["champion_metric"] for r in labelled) / len(labelled) if labelled else None
    challenger_mean = sum(r["challenger_metric"] for r in labelled) / len(labelled) if labelled else None
    ok = champion_mean is None or challenger_mean is None or is_better(metric, challenger_mean, champion_mean, 0.0)
    details = {"shadow_days": len(rows), "labelled_days": len(labelled), "metric": metric,
               "champion_realized": champion_mean, "challenger_realized": challenger_mean}
    if ok:
        registry.promote(engine, spec.name, challenger, actor=actor,
                         reason=f"challenger passed {len(rows)} shadow days")
        registry.remove_alias(engine, spec.name, registry.CHALLENGER, actor=actor, reason="promoted to champion")
    else:
        registry.remove_alias(engine, spec.name, registry.CHALLENGER, actor=actor,
                              reason=f"worse than champion in shadow ({challenger_mean} vs {champion_mean})")
    alerts.record(engine, Alert(
        kind="gate_promote" if ok else "gate_reject", severity="info" if ok else "warning",
        message=f"challenger {challenger} {'promoted' if ok else 'demoted'} after {len(rows)} shadow days",
        model_name=spec.name, details=details,
    ))
    return {"challenger": challenger, "promoted": ok, **details}


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
        profile=build_profile(spec, reference.loc[:, spec.feature_names], scores),
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

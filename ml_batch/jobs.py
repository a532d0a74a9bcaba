"""Whole jobs (train → register → gate; register an outside artifact), shared by the CLI and the DAGs."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from pathlib import Path

import joblib
import sqlalchemy as sa

from ml_batch import registry
from ml_batch.errors import RegistryError, TrainingError
from ml_batch.gate import GateDecision, decide
from ml_batch.metrics import evaluate
from ml_batch.registry import ModelVersion, NewVersion
from ml_batch.spec import Spec
from ml_batch.training import labels_of, load_labelled, predict_scores, split, train, window_for

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainOutcome:
    """A registered candidate and, when asked, the gate's decision about it."""

    version: ModelVersion
    decision: GateDecision | None
    promoted: bool


def train_and_register(
    engine: sa.Engine, spec: Spec, as_of: dt.date, *, actor: str, promote: bool = False
) -> TrainOutcome:
    """Train on the labels known on `as_of`, register the result; with `promote`, run the gate.

    The gate scores the current champion on the candidate's holdout rows (the same rows, not just the
    same days) and records both scores in the registry's audit trail.
    """
    result = train(engine, spec, as_of)
    new = NewVersion(
        metrics=result.metrics,
        source="trained",
        window=result.window.as_dict(),
        n_train=result.n_train,
        n_holdout=result.n_holdout,
        tags={"as_of": as_of.isoformat(), "fit_seconds": round(result.fit_seconds, 2)},
    )
    version = registry.register(engine, spec, result.pipeline, new, actor=actor)
    if not promote:
        return TrainOutcome(version, None, False)

    metric = spec.training.metric
    candidate_score = result.metrics.get(metric, float("nan"))
    champion_score: float | None = None
    if registry.CHAMPION in registry.aliases(engine, spec.name):
        champion = registry.load(engine, spec, registry.CHAMPION)
        holdout = split(load_labelled(engine, spec, result.window), result.window)[1]
        champion_metrics = evaluate(
            spec.model.task, labels_of(holdout, spec), predict_scores(champion.pipeline, holdout, spec)
        )
        champion_score = champion_metrics.get(metric, float("nan"))
    decision = decide(
        metric, candidate_score, champion_score,
        floor=spec.training.min_score, min_improvement=spec.training.min_improvement,
    )
    if decision.promote:
        registry.promote(engine, spec.name, version.version, actor=actor, reason=f"gate: {decision.reason}")
    else:
        logger.warning("%s version %d not promoted: %s", spec.name, version.version, decision.reason)
    return TrainOutcome(registry.get_version(engine, spec.name, version.version), decision, decision.promote)


def register_artifact(
    engine: sa.Engine, spec: Spec, artifact: Path, as_of: dt.date, *, actor: str
) -> ModelVersion:
    """Register a pipeline trained elsewhere (a notebook), after the same checks a trained one passes.

    The artifact must be a fitted pipeline over exactly the spec's features; it is then evaluated on the
    spec's holdout window as of `as_of`, so its recorded metrics are comparable with trained versions.
    """
    if not artifact.is_file():
        raise RegistryError(f"artifact {artifact} does not exist or is not a file")
    try:
        pipeline = joblib.load(artifact)
    except Exception as exc:  # any unpickling failure means "not a usable artifact"; re-raised below
        raise RegistryError(f"artifact {artifact} cannot be loaded with joblib: {exc}") from exc
    registry.check_pipeline_schema(spec, pipeline)
    window = window_for(spec, as_of)
    holdout = split(load_labelled(engine, spec, window), window)[1]
    if holdout.empty:
        raise TrainingError(
            f"model {spec.name!r}: no labelled holdout rows in {window.holdout_start}..{window.end} "
            f"to check artifact {artifact} on"
        )
    metrics = evaluate(spec.model.task, labels_of(holdout, spec), predict_scores(pipeline, holdout, spec))
    new = NewVersion(
        metrics=metrics,
        source="registered",
        window={k: v for k, v in window.as_dict().items() if k.startswith("holdout")},
        n_holdout=len(holdout),
        tags={"artifact_file": artifact.name, "as_of": as_of.isoformat()},
    )
    return registry.register(engine, spec, pipeline, new, actor=actor)

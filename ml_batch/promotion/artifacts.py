"""Artifacts trained elsewhere (a notebook): loaded without running their code, checked, then registered.

An artifact from outside is a skops file, never a pickle: skops reads it as data and rebuilds only types
ml-batch trusts (classes of scikit-learn, NumPy and SciPy, and whatever ml-batch's own pipeline for the spec
refers to, such as the functions of `ml_batch.features`), so a file that names anything else is refused
before any of it is loaded, and no code from the file runs. Pickles cannot be checked that way: unpickling is
what runs their code.
"""

from __future__ import annotations

import datetime as dt
import importlib
import zipfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ml_batch.db.spec_check import require_spec_db, source_column_types
from ml_batch.errors import RegistryError, TrainingError
from ml_batch.features import build_pipeline
from ml_batch.model import registry, verify
from ml_batch.model.compiled import compiled_fields
from ml_batch.model.registry import ModelVersion, NewVersion
from ml_batch.model.schema import check_pipeline_schema
from ml_batch.model.training import class_counts, class_names, load_training_set, metrics_of, predict_scores, window_for
from ml_batch.monitoring.profile import reference_profile
from ml_batch.run.shard import available_cores
from ml_batch.spec import Spec
from ml_batch.validation.suite import suite_of

# Classes from these packages may be rebuilt from a skops file from outside (functions may not, unless
# ml-batch's own pipeline uses them: a function is what a FunctionTransformer would call on the data).
TRUSTED_CLASS_PACKAGES = ("sklearn", "numpy", "scipy")


def register_artifact(
    engine: sa.Engine, spec: Spec, artifact: Path, as_of: dt.date, *, actor: str, spec_file: Path | None = None,
) -> ModelVersion:
    """Register a pipeline trained elsewhere (a notebook, saved with `skops.io.dump`), after the same checks a
    trained one passes.

    The file must be a skops file holding only trusted types (see the module docstring) and a fitted
    pipeline over exactly the spec's features; it is then evaluated on the spec's holdout window as of
    `as_of`, so its recorded metrics are comparable with trained versions, and signed like any version. Its
    drift reference is profiled from the window's training days (the notebook's own data is not known). The
    holdout and the reference leave out the rows scoring would quarantine, as a trained version's do
    (`ml_batch.model.training.load_training_set`). A multiclass pipeline records its own classes
    (`class_names`) and the holdout's rows per class (`class_counts` holds "holdout" only: the rows it was
    trained on are the notebook's, not known here). A supported tree ensemble is compiled and proven on the
    holdout as a trained one is (`ml_batch.model.compiled.compiled_fields`).

    Args:
        engine: The ml-batch database.
        spec: The model's spec.
        artifact: The skops file.
        as_of: Evaluate on the holdout of the window whose labels are known on this day.
        actor: Who registers it (recorded).
        spec_file: The spec's file, if it was read from one: errors name it, and a relative
            `validation.suite` is resolved against its folder.

    Returns:
        The new version (source "registered").

    Raises:
        RegistryError: The file is missing, not a skops file, unreadable or holds untrusted types.
        FeatureSchemaMismatch: It is not a fitted pipeline over the spec's features.
        TrainingError: The holdout window has no labelled rows to evaluate it on, or fails validation.
    """
    pipeline = load_outside_artifact(spec, artifact)
    check_pipeline_schema(spec, pipeline, f"artifact {artifact}")
    require_spec_db(engine, spec, origin=spec_file)
    window = window_for(spec, as_of)
    suite_file = suite_of(spec, spec_file)
    data = load_training_set(engine, spec, window, suite_file=suite_file)
    train_part, holdout = data.train, data.holdout
    if holdout.empty:
        raise TrainingError(
            f"model {spec.name!r}: no labelled holdout rows in {window.holdout_start}..{window.end} "
            f"to check artifact {artifact} on"
        )
    scores = predict_scores(pipeline, holdout, spec)
    reference = train_part if not train_part.empty else holdout
    multiclass = spec.model.task == "multiclass"
    new = NewVersion(
        metrics=metrics_of(spec, pipeline, holdout, scores),
        source="registered",
        window={k: v for k, v in window.as_dict().items() if k.startswith("holdout")},
        n_holdout=len(holdout),
        tags={"artifact_file": artifact.name, "as_of": as_of.isoformat()},
        profile=reference_profile(spec, pipeline, reference, holdout, scores),
        n_excluded=data.exclusions.total, exclusions=data.exclusions.as_dict(),
        holdout_sample=verify.holdout_sample(spec, holdout, scores),
        source_types=source_column_types(engine, spec),
        classes=class_names(pipeline) if multiclass else None,
        class_counts={"holdout": class_counts(holdout, spec)} if multiclass else None,
        **compiled_fields(pipeline, spec, holdout, scores, nthread=available_cores()),
    )
    return registry.register(engine, spec, pipeline, new, actor=actor)


def load_outside_artifact(spec: Spec, artifact: Path) -> Any:
    """The object in a skops file, rebuilt only if every type it names is trusted; no code from it runs.

    Args:
        spec: The model's spec (what its own pipeline refers to is trusted too).
        artifact: The skops file.

    Returns:
        The rebuilt object (any type: `check_pipeline_schema` checks it next).

    Raises:
        RegistryError: The file is missing, not a skops file, unreadable, or names an untrusted type.
    """
    import skops.io as sio  # only `models register` needs it

    _check_skops_file(artifact)
    named = _named_types(artifact)
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


def _check_skops_file(artifact: Path) -> None:
    if not artifact.is_file():
        raise RegistryError(f"artifact {artifact} does not exist or is not a file")
    if not _is_skops_file(artifact):
        raise RegistryError(
            f"artifact {artifact} is not a skops file (a pickle or joblib file?): ml-batch never unpickles a "
            "file from outside, because unpickling runs whatever code the file contains; save the fitted "
            "pipeline with skops.io.dump(pipeline, 'model.skops') and register that file"
        )


def _named_types(artifact: Path) -> list[str]:
    """Every type the skops file names (read from its schema; nothing is rebuilt)."""
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(file=artifact))
    except Exception as exc:  # a damaged or foreign zip: any failure to read its schema means "unusable"
        raise RegistryError(f"artifact {artifact} is not a readable skops file: {exc}") from exc


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

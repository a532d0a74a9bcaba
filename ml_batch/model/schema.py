"""Whether a model fits its spec: the features a version recorded, and a pipeline's own columns.

Both checks compare against the spec's features (names, order and types), so a version is never scored on
other columns than it was fitted on: `check_feature_schema` when a registered version is loaded (its
recorded `feature_schema`), `check_pipeline_schema` before a pipeline is registered (trained here, or a file
from outside). sklearn is imported only by the check that needs it.
"""

from __future__ import annotations

from typing import Any

from ml_batch.errors import FeatureSchemaMismatch
from ml_batch.spec import Spec


def check_feature_schema(spec: Spec, recorded: list[dict[str, str]], what: str) -> None:
    """Refuse a version whose recorded features differ from the spec's (names, order, types).

    Args:
        spec: The spec the version is to score for.
        recorded: The version's recorded feature schema (`[{"name": ..., "type": ...}, ...]`).
        what: The version as errors name it (e.g. "version 3").

    Raises:
        FeatureSchemaMismatch: Naming the missing and unexpected features, or the other order.
    """
    if recorded == spec.feature_schema:
        return
    expected = [f"{f['name']}:{f['type']}" for f in spec.feature_schema]
    got = [f"{f.get('name')}:{f.get('type')}" for f in recorded]
    missing = [name for name in expected if name not in got]
    extra = [name for name in got if name not in expected]
    detail = f"missing {missing}, unexpected {extra}" if missing or extra else "same features in another order"
    raise FeatureSchemaMismatch(
        f"model {spec.name!r} {what} expects features {got}, but the spec provides {expected} ({detail})"
    )


def check_pipeline_schema(spec: Spec, pipeline: Any, what: str = "artifact") -> None:
    """`pipeline` must be a fitted sklearn Pipeline over exactly the spec's feature columns, in order, able
    to score.

    Args:
        spec: The spec it is registered for.
        pipeline: Any object (a file from outside can hold anything).
        what: The pipeline as errors name it (e.g. the file it came from).

    Raises:
        FeatureSchemaMismatch: It cannot score the spec's task, is not fitted on the spec's columns in order,
            is not a Pipeline, or is not fitted.
    """
    _check_columns(spec, pipeline, what)
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(pipeline, Pipeline):
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} is a {type(pipeline).__name__}, not a fitted sklearn Pipeline "
            "(the preprocessing of the spec's features must be part of it)"
        )
    try:
        check_is_fitted(pipeline)
    except NotFittedError as exc:
        raise FeatureSchemaMismatch(f"model {spec.name!r}: {what} is not fitted ({exc})") from exc


def _check_columns(spec: Spec, pipeline: Any, what: str) -> None:
    """It scores the spec's task and was fitted on a DataFrame of exactly the spec's columns, in order."""
    needed = "predict" if spec.model.task == "regression" else "predict_proba"
    if not hasattr(pipeline, needed):
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} is a {type(pipeline).__name__}, not a fitted sklearn Pipeline with "
            f"{needed}() (a {spec.model.task} model is expected)"
        )
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} ({type(pipeline).__name__}) is not fitted on a DataFrame with named "
            f"columns (it has no feature_names_in_); expected a pipeline fitted on columns {spec.feature_names}"
        )
    if list(names) != spec.feature_names:
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} was fitted on columns {list(names)}, but the spec's features are "
            f"{spec.feature_names} (names and order must match)"
        )
    if spec.model.task == "multiclass":
        _check_classes(spec, pipeline, what)


def _check_classes(spec: Spec, pipeline: Any, what: str) -> None:
    """A multiclass pipeline knows two classes or more (`classes_`), whose names as text are distinct (they
    key its probabilities: `ml_batch.model.training.class_names`)."""
    from ml_batch.model.training import class_names  # the one class-name rule (training imports sklearn)

    names = class_names(pipeline) if getattr(pipeline, "classes_", None) is not None else None
    if names is None or len(names) < 2:
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} " + ("has no classes_" if names is None else f"has classes {names}")
            + "; a multiclass model is expected to be a classifier of at least two classes")
    if len(set(names)) != len(names):
        raise FeatureSchemaMismatch(
            f"model {spec.name!r}: {what} has classes {names}, which repeat as text; expected distinct class names")

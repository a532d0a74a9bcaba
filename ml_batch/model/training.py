"""Training: the labelled set as it was known on the as-of day, a time-based holdout, fit and evaluate.

Which label belongs to which row is `ml_batch.model.labels`' rule (one event per key, or recurring entities with
`labels.date_column`); training only chooses the window. Time rules (all days are UTC):
- a label is *known* on day A when its row's event day e satisfies e + delay_days <= A and, if the
  labels have a `known_at_column`, that timestamp is before A+1 (nothing recorded after A is used);
- the window is the `window_days` event days ending at the last labelled day, A - delay_days;
- the holdout is the last `holdout_days` of the window, never a random split, so the model is judged
  on days that come after everything it was fitted on, as in production.

The window's rows are validated as a scoring day's are, and the rows scoring would quarantine are left out of
the training days, the holdout and so the drift reference (`ml_batch.model.validity`); `load_training_set` is
the one loader that does both, for training, the gate's retry and a registered artifact alike. A feature
NULL in every training row fails training: a model cannot learn from it.

A multiclass model's labels are class names, text (`labels_of`: an integer label 3 is the class "3", by the
category rule of `ml_batch.categories`), and its scores are the probabilities of its classes in the order
`class_names` gives (the pipeline's sorted `classes_`). Its training set needs at least two classes and
`training.min_class_rows` rows of each; a holdout class the training days never saw is allowed, and is
counted (`n_unseen`) instead of being evaluated.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.pipeline import Pipeline

from ml_batch.categories import MISSING_CATEGORY, category_series
from ml_batch.db.sources import day_bounds, selectable, timestamptz_literal, utc_day
from ml_batch.errors import TrainingError
from ml_batch.features import build_pipeline, feature_frame
from ml_batch.model.labels import LABEL, check_one_label_per_row, join_labels
from ml_batch.model.metrics import evaluate
from ml_batch.model.validity import ROW_ID, Exclusions, exclude_failing, row_identity, validate_window_rows
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

EVENT_TIME = "_event_time"
EVENT_DAY = "_event_day"
_MIN_TRAIN_ROWS = 50


@dataclass(frozen=True)
class TrainingWindow:
    """Event days [start, end] (inclusive); holdout is [holdout_start, end]."""

    as_of: dt.date
    start: dt.date
    holdout_start: dt.date
    end: dt.date

    @property
    def train_end(self) -> dt.date:
        """The last training day: the day before the holdout."""
        return self.holdout_start - dt.timedelta(days=1)

    def as_dict(self) -> dict[str, str]:
        """The window as ISO days (what the registry and the audit trail record)."""
        return {
            "as_of": self.as_of.isoformat(),
            "train_start": self.start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "holdout_start": self.holdout_start.isoformat(),
            "holdout_end": self.end.isoformat(),
        }


def training_window(as_of: dt.date, delay_days: int, window_days: int, holdout_days: int) -> TrainingWindow:
    """The event-day window whose labels are all known on `as_of` (pure)."""
    if holdout_days >= window_days:
        raise ValueError(f"holdout_days ({holdout_days}) must be smaller than window_days ({window_days})")
    end = as_of - dt.timedelta(days=delay_days)
    return TrainingWindow(
        as_of=as_of,
        start=end - dt.timedelta(days=window_days - 1),
        holdout_start=end - dt.timedelta(days=holdout_days - 1),
        end=end,
    )


def window_for(spec: Spec, as_of: dt.date) -> TrainingWindow:
    """The training window of `spec` (its labels' delay, window and holdout days) as of `as_of`."""
    return training_window(as_of, spec.labels.delay_days, spec.training.window_days, spec.training.holdout_days)


def window_rows(spec: Spec, window: TrainingWindow) -> sa.Subquery:
    """The source rows of the window's event days: key, event time, UTC event day, features and the row's
    identity (`ml_batch.model.validity.row_identity`, what validation keys failing rows by)."""
    src = selectable(spec.source, [spec.source.key, spec.source.date_column, *spec.feature_names], "src")
    start, _ = day_bounds(window.start)
    _, end = day_bounds(window.end)
    event_time = src.c[spec.source.date_column]
    # Typed literals, not bound values: validation compiles these rows into a view (DDL takes no parameters).
    return sa.select(
        src.c[spec.source.key],
        event_time.label(EVENT_TIME),
        utc_day(event_time).label(EVENT_DAY),
        *[src.c[name] for name in spec.feature_names],
        row_identity(src.c[spec.source.key], event_time).label(ROW_ID),
    ).where(event_time >= timestamptz_literal(start), event_time < timestamptz_literal(end)).subquery("window_rows")


def labelled_query(spec: Spec, window: TrainingWindow) -> sa.Select:
    """Rows of the window joined to the labels known on the as-of day (`ml_batch.model.labels`: one join)."""
    rows = window_rows(spec, window)
    joined = join_labels(spec, rows, key=spec.source.key, day=EVENT_DAY, as_of=window.as_of).subquery("labelled")
    return sa.select(joined).order_by(joined.c[EVENT_TIME], joined.c[spec.source.key])


def load_labelled(engine: sa.Engine, spec: Spec, window: TrainingWindow) -> pd.DataFrame:
    """Exactly one row per labelled source row of the window, with its own label and `_event_day` (UTC date).

    A join that would repeat a row (a key on several days without `labels.date_column`, or several label
    rows for one row) is a `LabelJoinError` naming the keys, before anything is loaded.
    """
    with engine.connect() as conn:
        check_one_label_per_row(conn, spec, window_rows(spec, window), key=spec.source.key, day=EVENT_DAY,
                                as_of=window.as_of, what=f"training window {window.start}..{window.end}")
        frame = pd.read_sql(labelled_query(spec, window), conn)
    frame[EVENT_DAY] = pd.to_datetime(frame[EVENT_DAY]).dt.date
    return frame


@dataclass(frozen=True)
class TrainingSet:
    """The labelled rows of a window that scoring would not quarantine, by part, and what was left out."""

    window: TrainingWindow
    train: pd.DataFrame
    holdout: pd.DataFrame
    exclusions: Exclusions


def load_training_set(engine: sa.Engine, spec: Spec, window: TrainingWindow, *,
                      suite_file: Path | None = None) -> TrainingSet:
    """The window's labelled rows, split into training and holdout days, without the rows scoring would
    quarantine (`ml_batch.model.validity`): what training, the gate's retry and a registered artifact use.

    Args:
        engine: the database holding the source and the labels.
        spec: the model spec.
        window: the training window.
        suite_file: the spec's extra GX suite file, resolved against the spec's folder
            (`ml_batch.validation.suite.suite_path`); None: an absolute `validation.suite`, or none.

    Raises:
        TrainingError: the window fails validation as a batch, or too many of its rows fail.
        SourceError: the source cannot be read.
        LabelJoinError: labels do not join the window's rows one to one.
    """
    what = f"training window {window.start}..{window.end}"
    found = validate_window_rows(engine, spec, window_rows(spec, window), event_time=EVENT_TIME, what=what,
                                 suite_file=suite_file)
    train_part, holdout, exclusions = exclude_failing(found, *split(load_labelled(engine, spec, window), window))
    if exclusions.total:
        logger.info("%s %s: left out %d labelled rows that scoring would quarantine (%d training, %d holdout): %s",
                    spec.name, what, exclusions.total, exclusions.train, exclusions.holdout, exclusions.reasons)
    return TrainingSet(window, train_part, holdout, exclusions)


def split(frame: pd.DataFrame, window: TrainingWindow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) by event day: holdout is every row on or after `window.holdout_start`."""
    in_holdout = frame[EVENT_DAY] >= window.holdout_start
    return frame.loc[~in_holdout], frame.loc[in_holdout]


def labels_of(frame: pd.DataFrame, spec: Spec) -> np.ndarray:
    """The label column as the task needs it: a binary label must be 0/1 (or booleans); a multiclass label is
    a class name (object array of str, by `ml_batch.categories.category_text`) and never NULL."""
    values = frame[LABEL]
    if spec.model.task == "multiclass":
        names = category_series(values).to_numpy(dtype=object)
        missing = int((names == MISSING_CATEGORY).sum())
        if missing:
            raise TrainingError(f"model {spec.name!r}: label column {spec.labels.column!r} is NULL in {missing} of "
                                f"{len(names)} labelled rows; a multiclass label must name a class")
        return names
    if spec.model.task == "binary":
        numeric = pd.to_numeric(values.astype("object").map(_bool_to_int), errors="coerce")
        bad = sorted({str(v) for v, n in zip(values, numeric, strict=True) if n not in (0, 1)})
        if bad:
            raise TrainingError(
                f"model {spec.name!r}: label column {spec.labels.column!r} has values {bad[:5]}; "
                "a binary task expects 0/1 or true/false"
            )
        return numeric.to_numpy(dtype=np.int64)
    return pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64)


def _bool_to_int(value: object) -> object:
    return int(value) if isinstance(value, bool | np.bool_) else value


def class_names(pipeline: Pipeline) -> list[str]:
    """A multiclass pipeline's class names, as text, in the order of its probabilities: the one home of the
    class order (a registered pipeline fitted on integer labels 1, 2 gives "1", "2")."""
    return [str(c) for c in pipeline.classes_]


def predict_scores(pipeline: Pipeline, frame: pd.DataFrame, spec: Spec) -> np.ndarray:
    """P(class 1) for binary tasks, the predicted value for regression (empty in, empty out); for multiclass
    the (n, k) probabilities of the k classes in `class_names` order (empty in: shape (0, k)).

    The one place that turns a pipeline and a frame into scores: training, the gate, daily scoring and
    shadow scoring all call it.
    """
    if spec.model.task == "multiclass":
        if frame.empty:
            return np.empty((0, len(pipeline.classes_)), dtype=np.float64)
        return np.asarray(pipeline.predict_proba(feature_frame(frame, spec)), dtype=np.float64)
    if frame.empty:
        return np.empty(0, dtype=np.float64)
    features = feature_frame(frame, spec)
    if spec.model.task == "binary":
        return np.asarray(pipeline.predict_proba(features)[:, 1], dtype=np.float64)
    return np.asarray(pipeline.predict(features), dtype=np.float64)


def metrics_of(spec: Spec, pipeline: Pipeline, frame: pd.DataFrame, scores: np.ndarray) -> dict[str, float]:
    """`evaluate` of `pipeline`'s `scores` of `frame`'s rows against their labels (a multiclass pipeline's on
    its own classes): how training, a registered artifact and the gate judge a model on a holdout."""
    classes = class_names(pipeline) if spec.model.task == "multiclass" else None
    return evaluate(spec.model.task, labels_of(frame, spec), scores, classes=classes)


def class_counts(frame: pd.DataFrame, spec: Spec) -> dict[str, int]:
    """Labelled rows per class name (multiclass), classes in sorted order."""
    names, counts = np.unique(labels_of(frame, spec).astype(str), return_counts=True)
    return {str(name): int(n) for name, n in zip(names, counts, strict=True)}


@dataclass
class TrainResult:
    """A fitted pipeline with what the registry records about it, and the holdout it was judged on."""

    pipeline: Pipeline
    window: TrainingWindow
    n_train: int
    n_holdout: int
    metrics: dict[str, float]
    fit_seconds: float
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_scores: np.ndarray
    n_excluded: int = 0
    exclusions: dict[str, Any] | None = None  # `Exclusions.as_dict()`: what `model_versions.exclusions` holds
    # A multiclass version's `model_versions.classes` and `class_counts` (None for binary and regression).
    classes: list[str] | None = None
    class_counts: dict[str, dict[str, int]] | None = None


def fit_and_evaluate(spec: Spec, data: TrainingSet) -> TrainResult:
    """Fit a fresh pipeline on the training days, evaluate it on the holdout days."""
    window, train, holdout = data.window, data.train, data.holdout
    _check_usable(spec, train, "training", window.start, window.train_end)
    _check_usable(spec, holdout, "holdout", window.holdout_start, window.end)
    pipeline = build_pipeline(spec)
    started = time.perf_counter()
    pipeline.fit(feature_frame(train, spec), labels_of(train, spec))
    fit_seconds = time.perf_counter() - started
    holdout_scores = predict_scores(pipeline, holdout, spec)
    metrics = metrics_of(spec, pipeline, holdout, holdout_scores)
    multiclass = spec.model.task == "multiclass"
    classes = class_names(pipeline) if multiclass else None
    counts = {"train": class_counts(train, spec), "holdout": class_counts(holdout, spec)} if multiclass else None
    if counts is not None and metrics["n_unseen"]:
        logger.warning("%s: %d holdout rows carry classes the training days never saw (%s): left out of the holdout "
                       "metrics", spec.name, metrics["n_unseen"], sorted(set(counts["holdout"]) - set(classes or [])))
    logger.info(
        "fitted %s on %d rows in %.1fs; holdout %s = %.4f on %d rows",
        spec.name, len(train), fit_seconds, spec.training.metric, metrics.get(spec.training.metric, np.nan),
        len(holdout),
    )
    return TrainResult(pipeline, window, len(train), len(holdout), metrics, fit_seconds, train, holdout,
                       holdout_scores, data.exclusions.total, data.exclusions.as_dict(), classes, counts)


_IMPORTANCE_MAX_ROWS = 20_000
_IMPORTANCE_REPEATS = 5


def permutation_importance(pipeline: Pipeline, holdout: pd.DataFrame, spec: Spec, *, seed: int = 0) -> dict[str, float]:
    """Each feature's permutation importance on the holdout: the mean drop of `training.metric` (made
    higher-is-better) when that feature's values are shuffled, over 5 seeded shuffles of at most 20,000 rows.

    It is what the model loses without the feature, so a feature it ignores scores ~0: the drift share
    weighted by it (`drift.share_basis: importance`) never lets such a feature trigger retraining alone.
    """
    from sklearn.inspection import permutation_importance as sklearn_permutation_importance

    from ml_batch.model.metrics import HIGHER_IS_BETTER

    metric = spec.training.metric
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    rows = holdout if len(holdout) <= _IMPORTANCE_MAX_ROWS else holdout.sample(_IMPORTANCE_MAX_ROWS, random_state=seed)

    classes = class_names(pipeline) if spec.model.task == "multiclass" else None

    def score(estimator: Pipeline, features: pd.DataFrame, y: np.ndarray) -> float:
        return sign * evaluate(spec.model.task, y, predict_scores(estimator, features, spec), classes=classes)[metric]

    started = time.perf_counter()
    result = sklearn_permutation_importance(pipeline, feature_frame(rows, spec), labels_of(rows, spec), scoring=score,
                                            n_repeats=_IMPORTANCE_REPEATS, random_state=seed)
    importance = {name: float(value) for name, value in zip(spec.feature_names, result.importances_mean, strict=True)}
    logger.info("permutation importance of %s on %d holdout rows in %.1fs: %s", spec.name, len(rows),
                time.perf_counter() - started, importance)
    return importance


def train(engine: sa.Engine, spec: Spec, as_of: dt.date, *, suite_file: Path | None = None) -> TrainResult:
    """Build the valid labelled set known on `as_of` (`load_training_set`), fit, evaluate on the holdout."""
    window = window_for(spec, as_of)
    data = load_training_set(engine, spec, window, suite_file=suite_file)
    logger.info("loaded %d training and %d holdout rows for %s (%d left out), window %s", len(data.train),
                len(data.holdout), spec.name, data.exclusions.total, window.as_dict())
    return fit_and_evaluate(spec, data)


def _check_usable(spec: Spec, part: pd.DataFrame, name: str, start: dt.date, end: dt.date) -> None:
    minimum = _MIN_TRAIN_ROWS if name == "training" else 1
    if len(part) < minimum:
        raise TrainingError(
            f"model {spec.name!r}: {name} set {start}..{end} has {len(part)} labelled rows, expected at least "
            f"{minimum} (are labels {spec.labels.delay_days} days old available for these days?)"
        )
    if name == "training":
        _check_features_have_values(spec, part, start, end)
    if spec.model.task == "binary":
        classes = np.unique(labels_of(part, spec))
        if len(classes) < 2:
            raise TrainingError(
                f"model {spec.name!r}: {name} set {start}..{end} has only label {classes.tolist()}; "
                "a binary model needs both classes"
            )
    if spec.model.task == "multiclass":
        _check_classes(spec, part, name, start, end)


def _check_classes(spec: Spec, part: pd.DataFrame, name: str, start: dt.date, end: dt.date) -> None:
    """A multiclass training set has two classes or more, each with `training.min_class_rows` rows; a holdout
    may hold any classes (one the training days lack is counted as unseen, not evaluated)."""
    if name != "training":
        return
    counts = class_counts(part, spec)
    if len(counts) < 2:
        raise TrainingError(f"model {spec.name!r}: training set {start}..{end} has only class {sorted(counts)}; a "
                            "multiclass model needs at least two classes")
    minimum = spec.training.min_class_rows
    rare = {label: n for label, n in counts.items() if n < minimum}
    if rare:
        raise TrainingError(
            f"model {spec.name!r}: training set {start}..{end} has fewer than training.min_class_rows ({minimum}) "
            f"rows of class(es) {', '.join(f'{label!r} ({n} rows)' for label, n in sorted(rare.items()))}; wait for "
            "more labels of them, or lower training.min_class_rows")


def _check_features_have_values(spec: Spec, part: pd.DataFrame, start: dt.date, end: dt.date) -> None:
    """A feature NULL in every training row fails training, naming it (the first one, in the spec's order)."""
    for name in spec.feature_names:
        if part[name].isna().all():
            raise TrainingError(
                f"model {spec.name!r}: feature {name!r} is NULL in every one of the {len(part)} rows of the training "
                f"set {start}..{end}: a model cannot learn from it (fill the column for these days, or remove the "
                "feature from the spec)"
            )

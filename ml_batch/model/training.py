"""Training: the labelled set as it was known on the as-of day, a time-based holdout, fit and evaluate.

Which label belongs to which row is `ml_batch.model.labels`' rule (one event per key, or recurring entities with
`labels.date_column`); training only chooses the window. Time rules (all days are UTC):
- a label is *known* on day A when its row's event day e satisfies e + delay_days <= A and, if the
  labels have a `known_at_column`, that timestamp is before A+1 (nothing recorded after A is used);
- the window is the `window_days` event days ending at the last labelled day, A - delay_days;
- the holdout is the last `holdout_days` of the window, never a random split, so the model is judged
  on days that come after everything it was fitted on, as in production.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sklearn.pipeline import Pipeline

from ml_batch.db.sources import day_bounds, selectable, utc_day
from ml_batch.errors import TrainingError
from ml_batch.features import build_pipeline, feature_frame
from ml_batch.model.labels import LABEL, check_one_label_per_row, join_labels
from ml_batch.model.metrics import evaluate
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
    """The source rows of the window's event days: key, event time, UTC event day and features."""
    src = selectable(spec.source, [spec.source.key, spec.source.date_column, *spec.feature_names], "src")
    start, _ = day_bounds(window.start)
    _, end = day_bounds(window.end)
    event_time = src.c[spec.source.date_column]
    return sa.select(
        src.c[spec.source.key],
        event_time.label(EVENT_TIME),
        utc_day(event_time).label(EVENT_DAY),
        *[src.c[name] for name in spec.feature_names],
    ).where(event_time >= start, event_time < end).subquery("window_rows")


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


def split(frame: pd.DataFrame, window: TrainingWindow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) by event day: holdout is every row on or after `window.holdout_start`."""
    in_holdout = frame[EVENT_DAY] >= window.holdout_start
    return frame.loc[~in_holdout], frame.loc[in_holdout]


def labels_of(frame: pd.DataFrame, spec: Spec) -> np.ndarray:
    """The label column as the task needs it; a binary label must be 0/1 (or booleans)."""
    values = frame[LABEL]
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


def predict_scores(pipeline: Pipeline, frame: pd.DataFrame, spec: Spec) -> np.ndarray:
    """P(class 1) for binary tasks, the predicted value for regression (empty in, empty out).

    The one place that turns a pipeline and a frame into scores: training, the gate, daily scoring and
    shadow scoring all call it.
    """
    if frame.empty:
        return np.empty(0, dtype=np.float64)
    features = feature_frame(frame, spec)
    if spec.model.task == "binary":
        return np.asarray(pipeline.predict_proba(features)[:, 1], dtype=np.float64)
    return np.asarray(pipeline.predict(features), dtype=np.float64)


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


def fit_and_evaluate(spec: Spec, frame: pd.DataFrame, window: TrainingWindow) -> TrainResult:
    """Fit a fresh pipeline on the training days, evaluate it on the holdout days."""
    train, holdout = split(frame, window)
    _check_usable(spec, train, "training", window.start, window.train_end)
    _check_usable(spec, holdout, "holdout", window.holdout_start, window.end)
    pipeline = build_pipeline(spec)
    started = time.perf_counter()
    pipeline.fit(feature_frame(train, spec), labels_of(train, spec))
    fit_seconds = time.perf_counter() - started
    holdout_scores = predict_scores(pipeline, holdout, spec)
    metrics = evaluate(spec.model.task, labels_of(holdout, spec), holdout_scores)
    logger.info(
        "fitted %s on %d rows in %.1fs; holdout %s = %.4f on %d rows",
        spec.name, len(train), fit_seconds, spec.training.metric, metrics.get(spec.training.metric, np.nan),
        len(holdout),
    )
    return TrainResult(pipeline, window, len(train), len(holdout), metrics, fit_seconds, train, holdout,
                       holdout_scores)


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

    def score(estimator: Pipeline, features: pd.DataFrame, y: np.ndarray) -> float:
        return sign * evaluate(spec.model.task, y, predict_scores(estimator, features, spec))[metric]

    started = time.perf_counter()
    result = sklearn_permutation_importance(pipeline, feature_frame(rows, spec), labels_of(rows, spec), scoring=score,
                                            n_repeats=_IMPORTANCE_REPEATS, random_state=seed)
    importance = {name: float(value) for name, value in zip(spec.feature_names, result.importances_mean, strict=True)}
    logger.info("permutation importance of %s on %d holdout rows in %.1fs: %s", spec.name, len(rows),
                time.perf_counter() - started, importance)
    return importance


def train(engine: sa.Engine, spec: Spec, as_of: dt.date) -> TrainResult:
    """Build the labelled set known on `as_of`, fit, evaluate on the time-based holdout."""
    window = window_for(spec, as_of)
    frame = load_labelled(engine, spec, window)
    logger.info("loaded %d labelled rows for %s, window %s", len(frame), spec.name, window.as_dict())
    return fit_and_evaluate(spec, frame, window)


def _check_usable(spec: Spec, part: pd.DataFrame, name: str, start: dt.date, end: dt.date) -> None:
    minimum = _MIN_TRAIN_ROWS if name == "training" else 1
    if len(part) < minimum:
        raise TrainingError(
            f"model {spec.name!r}: {name} set {start}..{end} has {len(part)} labelled rows, expected at least "
            f"{minimum} (are labels {spec.labels.delay_days} days old available for these days?)"
        )
    if spec.model.task == "binary":
        classes = np.unique(labels_of(part, spec))
        if len(classes) < 2:
            raise TrainingError(
                f"model {spec.name!r}: {name} set {start}..{end} has only label {classes.tolist()}; "
                "a binary model needs both classes"
            )

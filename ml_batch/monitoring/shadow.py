"""Shadow scoring: the challenger scores the day the champion published, into `shadow_predictions`.

When a `challenger` alias exists, the day's published rows are scored again by the challenger, streamed in
Arrow batches, into `shadow_predictions` (never into the analysts' table), and compared with the champion's
published predictions in `shadow_comparisons`:

- **binary**: `agreement` is the share of rows with the same predicted label, `score_correlation` the
  Pearson correlation of the two scores (P(class 1));
- **regression**: no agreement, the correlation of the two predicted values;
- **multiclass**: each shadow row holds the challenger's most probable class (`predicted_class`, the first
  of equals, as in publishing), its probability (`score`) and every class of the challenger with its
  probability (`class_scores`, JSON, built by the publishing rule `ml_batch.run.shard.class_scores_jsonb`).
  `agreement` is the share of rows whose predicted class is the champion's published `predicted_label`;
  `score_correlation` is NULL: each model's `score` is the probability of *its own* predicted class, so on
  a row where they disagree the two numbers are of different classes and their correlation measures nothing.

Their realized metrics follow when the labels arrive (`ml_batch.monitoring.performance`). A re-run replaces
the day's shadow rows and comparison.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from ml_batch.db import arrow
from ml_batch.db.locks import schema_of
from ml_batch.db.tables import shadow_comparisons, shadow_predictions
from ml_batch.jsonvalues import json_safe
from ml_batch.model import registry
from ml_batch.model.training import class_names, predict_scores
from ml_batch.monitoring.classes import ClassScores
from ml_batch.monitoring.published import PREDICTED_COLUMN, SCORE_COLUMN, VERSION_COLUMN, scored_day_sql
from ml_batch.run.keys import key_texts
from ml_batch.run.shard import class_scores_jsonb
from ml_batch.spec import Spec
from ml_batch.tasks import MULTICLASS

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowTally:
    """What the comparison needs of the rows scored so far: counts and the sums of the Pearson correlation.

    Attributes:
        n: Rows scored by the challenger.
        agree: Rows whose predicted label (binary) or class (multiclass) is the champion's (0 for regression).
        sums: Σx, Σy, Σxx, Σyy, Σxy of the champion's (x) and the challenger's (y) scores.
        champion_version: The version that published the rows (None before the first row).
    """

    n: int = 0
    agree: int = 0
    sums: tuple[float, float, float, float, float] = (0.0, 0.0, 0.0, 0.0, 0.0)
    champion_version: int | None = None

    def plus(self, other: ShadowTally) -> ShadowTally:
        """The tally of both sets of rows (the later champion version wins, as rows are read in order)."""
        sx, sy, sxx, syy, sxy = (a + b for a, b in zip(self.sums, other.sums, strict=True))
        return ShadowTally(self.n + other.n, self.agree + other.agree, (sx, sy, sxx, syy, sxy),
                           other.champion_version if other.champion_version is not None else self.champion_version)

    def correlation(self) -> float | None:
        """Pearson correlation of the champion's and the challenger's scores (None: a constant side)."""
        sx, sy, sxx, syy, sxy = self.sums
        cov = sxy - sx * sy / self.n
        var_x, var_y = sxx - sx * sx / self.n, syy - sy * sy / self.n
        if var_x <= 0 or var_y <= 0:
            return None
        return float(cov / math.sqrt(var_x * var_y))


@dataclass(frozen=True)
class ChallengerRows:
    """The challenger's predictions of one batch, as shadow rows hold them.

    Attributes:
        score: Per row: P(class 1) (binary), the predicted value (regression), the predicted class's
            probability (multiclass).
        label: Binary only: the 0/1 predicted label at `predictions.threshold`.
        classes: Multiclass only: the challenger's classes (columns of `probabilities`) and each row's
            predicted class (`ClassScores`, whose argmax rule is the first of equals, as publishing's).
    """

    score: np.ndarray
    label: np.ndarray | None = None
    classes: ClassScores | None = None


def challenger_rows(spec: Spec, y: np.ndarray, classes: Sequence[str] | None = None) -> ChallengerRows:
    """The challenger's predictions of a batch from its `predict_scores` output `y` (pure).

    Args:
        spec: The model spec.
        y: (n,) scores, or for a multiclass model the (n, k) probabilities of `classes`.
        classes: A multiclass challenger's class names (`training.class_names`); required for it.

    Raises:
        ValueError: A multiclass model without `classes`.
    """
    if spec.model.task == MULTICLASS:
        if classes is None:
            raise ValueError(f"model {spec.name!r} is multiclass: its challenger's class names are needed "
                             "(classes=...) to hold its probabilities")
        predictions = ClassScores.from_probabilities(classes, y)
        top = predictions.probabilities.argmax(axis=1)
        return ChallengerRows(predictions.probabilities[np.arange(len(top)), top], classes=predictions)
    scores = np.asarray(y, dtype=np.float64)
    if spec.model.task == "binary":
        return ChallengerRows(scores, label=(scores >= spec.predictions.threshold).astype(np.int16))
    return ChallengerRows(scores)


def shadow_score(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str) -> dict[str, Any] | None:
    """Score the day's published rows with the challenger into `shadow_predictions` and compare.

    Returns:
        The comparison stored in `shadow_comparisons` (its day as ISO text), or None when there is no
        challenger or nothing was published for the day.
    """
    challenger_version = registry.aliases(engine, spec.name).get(registry.CHALLENGER)
    if challenger_version is None:
        return None
    challenger = registry.load(engine, spec, challenger_version)
    with engine.begin() as conn:
        conn.execute(shadow_predictions.delete().where(
            shadow_predictions.c.model_name == spec.name, shadow_predictions.c.partition_date == day,
            shadow_predictions.c.model_version == challenger_version))
    tally = _score_day(engine, spec, day, challenger.pipeline, challenger_version, run_id=run_id)
    if tally.n == 0 or tally.champion_version is None:
        return None
    comparison = comparison_of(spec, day, challenger_version, tally)
    with engine.begin() as conn:
        conn.execute(shadow_comparisons.delete().where(
            shadow_comparisons.c.model_name == spec.name, shadow_comparisons.c.partition_date == day,
            shadow_comparisons.c.challenger_version == challenger_version))
        conn.execute(shadow_comparisons.insert().values(**comparison))
    logger.info("%s %s shadow: challenger %d vs champion %d on %d rows, agreement %s, correlation %s", spec.name,
                day, challenger_version, tally.champion_version, tally.n, comparison["agreement"],
                comparison["score_correlation"])
    return {**comparison, "partition_date": day.isoformat()}


def comparison_of(spec: Spec, day: dt.date, challenger_version: int, tally: ShadowTally) -> dict[str, Any]:
    """The `shadow_comparisons` row of a day's tally (pure); `tally` holds at least one row."""
    task = spec.model.task
    agreement = tally.agree / tally.n if task in ("binary", MULTICLASS) else None
    correlation = None if task == MULTICLASS else tally.correlation()  # why: the module docstring
    return {"model_name": spec.name, "partition_date": day, "challenger_version": challenger_version,
            "champion_version": tally.champion_version, "n": tally.n, "agreement": json_safe(agreement),
            "score_correlation": json_safe(correlation)}


def batch_tally(spec: Spec, frame: pd.DataFrame, rows: ChallengerRows) -> ShadowTally:
    """The tally of one batch: the champion's published predictions in `frame` (`SCORE_COLUMN`, and a
    multiclass model's `PREDICTED_COLUMN`), the challenger's `rows` (pure)."""
    x = frame[SCORE_COLUMN].to_numpy(dtype=np.float64)
    y = rows.score
    if rows.classes is not None:
        published = np.asarray([None if v is None else str(v) for v in frame[PREDICTED_COLUMN]], dtype=object)
        agree = int((published == rows.classes.predicted).sum())
    elif rows.label is not None:
        agree = int(((x >= spec.predictions.threshold) == rows.label.astype(bool)).sum())
    else:
        agree = 0
    sums = (float(x.sum()), float(y.sum()), float((x * x).sum()), float((y * y).sum()), float((x * y).sum()))
    return ShadowTally(len(y), agree, sums, int(frame[VERSION_COLUMN].iloc[0]))


def _score_day(engine: sa.Engine, spec: Spec, day: dt.date, pipeline: Pipeline, challenger_version: int, *,
               run_id: str) -> ShadowTally:
    """Stream the day's published rows, score each batch with the challenger and append it to
    `shadow_predictions` (one commit per batch); the tally of all of them."""
    url = engine.url.render_as_string(hide_password=False)
    table = f"{schema_of(engine)}.shadow_predictions"
    classes = class_names(pipeline) if spec.model.task == MULTICLASS else None
    tally = ShadowTally()
    with arrow.connect(url) as reader, arrow.connect(url) as writer:
        for batch in arrow.stream(reader, scored_day_sql(spec, day)):
            frame = batch.to_pandas()
            if frame.empty:
                continue
            rows = challenger_rows(spec, predict_scores(pipeline, frame, spec), classes)
            tally = tally.plus(batch_tally(spec, frame, rows))
            arrow.append(writer, table, shadow_table(spec, day, challenger_version, batch, rows, run_id=run_id))
            writer.commit()
    return tally


def shadow_table(spec: Spec, day: dt.date, version: int, batch: pa.RecordBatch, rows: ChallengerRows, *,
                 run_id: str) -> pa.Table:
    """The `shadow_predictions` rows of one batch scored by the challenger (pure); a multiclass model's with
    `predicted_class` and `class_scores` (jsonb in COPY's binary form), the other tasks' without them (NULL)."""
    n = len(rows.score)
    columns: dict[str, pa.Array] = {
        "model_name": pa.repeat(pa.scalar(spec.name), n),
        "partition_date": pa.repeat(pa.scalar(day, pa.date32()), n),
        "model_version": pa.repeat(pa.scalar(version, pa.int32()), n),
        # The one key-to-text rule (uuid keys arrive from ADBC as 16 bytes): labels join on this text.
        "entity_key": pa.array(key_texts(batch.column(spec.source.key)), pa.string()),
        "score": pa.array(rows.score, pa.float64()),
        "predicted_label": (pa.array(rows.label, pa.int16()) if rows.label is not None
                            else pa.nulls(n, pa.int16())),
        "run_id": pa.repeat(pa.scalar(run_id), n),
        "scored_at": pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC")), n),
    }
    if rows.classes is not None:
        columns["predicted_class"] = pa.array(rows.classes.predicted.tolist(), pa.string())
        columns["class_scores"] = class_scores_jsonb(rows.classes.probabilities, rows.classes.classes)
    return pa.table(columns)

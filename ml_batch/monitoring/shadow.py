"""Shadow scoring: the challenger scores the day the champion published, into `shadow_predictions`.

When a `challenger` alias exists, the day's published rows are scored again by the challenger, streamed in
Arrow batches, into `shadow_predictions` (never into the analysts' table), and compared with the champion's
published scores: the share of rows with the same predicted label (binary models) and the Pearson
correlation of the scores, in `shadow_comparisons`. Their realized metrics follow when the labels arrive
(`ml_batch.monitoring.performance`). A re-run replaces the day's shadow rows and comparison.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
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
from ml_batch.model.training import predict_scores
from ml_batch.monitoring.published import SCORE_COLUMN, VERSION_COLUMN, scored_day_sql
from ml_batch.run.keys import key_texts
from ml_batch.spec import Spec

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShadowTally:
    """What the comparison needs of the rows scored so far: counts and the sums of the Pearson correlation.

    Attributes:
        n: Rows scored by the challenger.
        agree: Rows whose predicted label is the champion's (binary models; 0 otherwise).
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


def shadow_score(engine: sa.Engine, spec: Spec, day: dt.date, *, run_id: str) -> dict[str, Any] | None:
    """Score the day's published rows with the challenger into `shadow_predictions` and compare.

    Returns:
        The comparison stored in `shadow_comparisons` (its day as ISO text), or None when there is no
        challenger, nothing was published for the day, or the model is multiclass (shadow rows hold one score
        per key, not class probabilities; `training.shadow_days` is refused for it at spec load).
    """
    if spec.model.task == "multiclass":
        logger.warning("%s is a multiclass model: shadow scoring is not supported for it, %s not shadow-scored",
                       spec.name, day)
        return None
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
    agreement = tally.agree / tally.n if spec.model.task == "binary" else None
    return {"model_name": spec.name, "partition_date": day, "challenger_version": challenger_version,
            "champion_version": tally.champion_version, "n": tally.n, "agreement": json_safe(agreement),
            "score_correlation": json_safe(tally.correlation())}


def batch_tally(spec: Spec, frame: pd.DataFrame, y: np.ndarray) -> ShadowTally:
    """The tally of one batch: the champion's published scores in `frame`, the challenger's `y` (pure)."""
    x = frame[SCORE_COLUMN].to_numpy(dtype=np.float64)
    threshold = spec.predictions.threshold
    agree = int(((x >= threshold) == (y >= threshold)).sum()) if spec.model.task == "binary" else 0
    sums = (float(x.sum()), float(y.sum()), float((x * x).sum()), float((y * y).sum()), float((x * y).sum()))
    return ShadowTally(len(y), agree, sums, int(frame[VERSION_COLUMN].iloc[0]))


def _score_day(engine: sa.Engine, spec: Spec, day: dt.date, pipeline: Pipeline, challenger_version: int, *,
               run_id: str) -> ShadowTally:
    """Stream the day's published rows, score each batch with the challenger and append it to
    `shadow_predictions` (one commit per batch); the tally of all of them."""
    url = engine.url.render_as_string(hide_password=False)
    table = f"{schema_of(engine)}.shadow_predictions"
    tally = ShadowTally()
    with arrow.connect(url) as reader, arrow.connect(url) as writer:
        for batch in arrow.stream(reader, scored_day_sql(spec, day)):
            frame = batch.to_pandas()
            if frame.empty:
                continue
            y = predict_scores(pipeline, frame, spec)
            tally = tally.plus(batch_tally(spec, frame, y))
            arrow.append(writer, table, shadow_table(spec, day, challenger_version, batch, y, run_id=run_id))
            writer.commit()
    return tally


def shadow_table(spec: Spec, day: dt.date, version: int, batch: pa.RecordBatch, y: np.ndarray, *,
                 run_id: str) -> pa.Table:
    """The `shadow_predictions` rows of one batch scored by the challenger (pure)."""
    labels = (y >= spec.predictions.threshold).astype(np.int16) if spec.model.task == "binary" else None
    n = len(y)
    return pa.table({
        "model_name": pa.repeat(pa.scalar(spec.name), n),
        "partition_date": pa.repeat(pa.scalar(day, pa.date32()), n),
        "model_version": pa.repeat(pa.scalar(version, pa.int32()), n),
        # The one key-to-text rule (uuid keys arrive from ADBC as 16 bytes): labels join on this text.
        "entity_key": pa.array(key_texts(batch.column(spec.source.key)), pa.string()),
        "score": pa.array(y, pa.float64()),
        "predicted_label": pa.array(labels, pa.int16()) if labels is not None else pa.nulls(n, pa.int16()),
        "run_id": pa.repeat(pa.scalar(run_id), n),
        "scored_at": pa.repeat(pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", tz="UTC")), n),
    })

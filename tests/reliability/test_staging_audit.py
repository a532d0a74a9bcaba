"""Issue 10 row 4 (the publish side): the staging audit refuses ±Infinity scores for any model, and scores
outside [0, 1] for a binary model, naming the counts; nothing is published. Issue 25: a multiclass model's rows
must each hold every class's probability, summing to 1, with the argmax as the label."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from ml_batch.config import Settings
from ml_batch.errors import PublishError
from ml_batch.features import build_pipeline, feature_frame
from ml_batch.model import registry
from ml_batch.model.training import class_names
from ml_batch.run.names import staging_table
from ml_batch.run.plan import plan_run
from ml_batch.run.predictions import ensure_predictions_table
from ml_batch.run.publish import publish_run
from ml_batch.run.shard import score_shard
from ml_batch.run.staging import audit_staging, create_staging, stamp_staging
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import DAY, FIRST

pytestmark = pytest.mark.integration



def test_infinite_and_out_of_range_binary_scores_fail_the_audit_and_publish_nothing(
        settings: Settings, engine: sa.Engine, toy: Spec) -> None:
    plan = plan_run(engine, toy, DAY, run_id="odd")
    score_shard(engine, plan, 0)
    with engine.begin() as conn:  # what a broken model (or a bug between scoring and COPY) could stage
        conn.execute(sa.text(
            f"UPDATE {plan.staging_table} SET score = v.score FROM (VALUES "
            "(0, 'Infinity'::float8), (1, '-Infinity'), (2, 'Infinity'), (3, 1.5), (4, -0.25)) AS v(n, score) "
            f"WHERE id = (SELECT id FROM {plan.staging_table} ORDER BY id OFFSET v.n LIMIT 1)"))
    expected = (r"model 'toy' day 2026-05-21: staging audit failed: 3 infinite scores \(2 \+Infinity, "
                r"1 -Infinity\); 2 scores outside \[0, 1\] for a binary model; nothing was published$")
    with pytest.raises(PublishError, match=expected):
        publish_run(engine, plan)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {toy.predictions.table}")).scalar_one() == 0
        run = conn.execute(sa.text(
            f'SELECT status, error FROM "{settings.schema}".runs WHERE run_id = :r'), {"r": "odd"}).one()
    assert run.status == "failed" and "3 infinite scores" in run.error


def test_a_regression_model_may_score_outside_0_1_but_never_infinity(settings: Settings, engine: sa.Engine) -> None:
    spec = toy_spec(settings.schema, model={"task": "regression",
                                            "estimator": "sklearn.linear_model.LinearRegression", "params": {}},
                     training={"window_days": 10, "holdout_days": 3, "metric": "rmse", "min_score": 1.0})
    load_toy_data(engine, settings.schema, FIRST, days=1, rows_per_day=5)
    staging = staging_table(spec, "reg")

    def audit(scores: list[str]) -> None:
        with engine.begin() as conn:
            ensure_predictions_table(conn, spec)
            create_staging(conn, spec, staging)
            conn.execute(sa.text(
                f"INSERT INTO {staging} (id, score) SELECT n, s::float8 FROM unnest(:s) WITH ORDINALITY AS u(s, n)"),
                {"s": scores})
            stamp_staging(conn, staging, day=DAY, model="toy", version=1, artifact_sha256="0" * 64, run_id="reg")
            audit_staging(conn, spec, staging, day=DAY, version=1, expected_rows=len(scores))

    audit(["-3.5", "0.5", "1200"])  # a regression's scores are any finite number
    with pytest.raises(PublishError, match=r"staging audit failed: 1 infinite scores \(0 \+Infinity, 1 -Infinity\);"
                                           r" nothing was published$"):
        audit(["-3.5", "-Infinity", "1200"])


# -- multiclass: the class rules of the audit --------------------------------------------------------------
CLASSES = ["billing", "other", "technical"]


def _multiclass_toy(schema: str) -> Spec:
    return toy_spec(schema, model={"task": "multiclass", "estimator": "sklearn.linear_model.LogisticRegression",
                                   "params": {}},
                    training={"window_days": 10, "holdout_days": 3, "metric": "log_loss", "min_score": 2.0})


def _audit_multiclass(engine: sa.Engine, spec: Spec, rows: list[tuple[float, str | None, str]]) -> None:
    """Stage `rows` (score, predicted_label, class_scores as JSON text) and audit them against CLASSES."""
    staging = staging_table(spec, "mc")
    with engine.begin() as conn:
        ensure_predictions_table(conn, spec)
        create_staging(conn, spec, staging)
        for n, (score, label, class_scores) in enumerate(rows, start=1):
            conn.execute(sa.text(f"INSERT INTO {staging} (id, score, predicted_label, class_scores) "
                                 "VALUES (:n, :score, :label, CAST(:cs AS jsonb))"),
                         {"n": n, "score": score, "label": label, "cs": class_scores})
        stamp_staging(conn, staging, day=DAY, model="toy", version=1, artifact_sha256="0" * 64, run_id="mc")
        audit_staging(conn, spec, staging, day=DAY, version=1, expected_rows=len(rows), classes=CLASSES)


def test_multiclass_rows_must_hold_every_class_as_a_probability_summing_to_1_with_the_argmax_label(
        settings: Settings, engine: sa.Engine) -> None:
    spec = _multiclass_toy(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=1, rows_per_day=5)
    good = [
        (0.5, "billing", '{"billing": 0.5, "other": 0.25, "technical": 0.25}'),
        (0.4, "technical", '{"billing": 0.4, "other": 0.2, "technical": 0.4}'),  # a tie: either maximal class
        (1.0, "other", '{"billing": 0, "other": 1, "technical": 0}'),
        (0.6000000004, "billing", '{"billing": 0.6000000004, "other": 0.2, "technical": 0.2}'),  # within 1e-6 of 1
    ]
    _audit_multiclass(engine, spec, good)
    bad = [
        (0.5, "billing", '{"billing": 0.5, "technical": 0.5}'),                               # a class missing
        (0.5, "billing", '{"billing": 0.5, "other": 0.25, "technical": 0.25, "sales": 0}'),  # an unknown class
        (0.5, "billing", '{"billing": 0.5, "other": "NaN", "technical": 0.5}'),              # NaN
        (0.5, "billing", '{"billing": 0.5, "other": "Infinity", "technical": 0.5}'),         # infinite
        (1.5, "billing", '{"billing": 1.5, "other": -0.25, "technical": -0.25}'),            # outside [0, 1]
        (0.6, "billing", '{"billing": 0.6, "other": 0.3, "technical": 0.3}'),                # sums to 1.2
        (0.6, "billing", '{"billing": 0.6, "other": 0.2, "technical": 0.19}'),               # sums to 0.99
        (0.25, "other", '{"billing": 0.5, "other": 0.25, "technical": 0.25}'),               # not the argmax
        (0.5, None, '{"billing": 0.5, "other": 0.25, "technical": 0.25}'),                   # no label
        (0.25, "billing", '{"billing": 0.5, "other": 0.25, "technical": 0.25}'),             # score not its p
    ]
    expected = (
        r"model 'toy' day 2026-05-21: staging audit failed: 1 scores outside \[0, 1\] for a multiclass model; "
        r"2 rows whose class_scores are not exactly the 3 classes \['billing', 'other', 'technical'\]; "
        r"3 rows with a NaN, infinite or out-of-\[0, 1\] class probability; "
        r"2 rows whose class probabilities do not sum to 1 \(within 1e-06\); "
        r"2 rows whose predicted_label is not a class of maximal probability; "
        r"1 rows whose score is not the probability of their predicted_label; nothing was published$"
    )
    with pytest.raises(PublishError, match=expected):
        _audit_multiclass(engine, spec, good + bad)


def test_a_multiclass_staging_table_refuses_a_predictions_table_made_for_another_task(
        settings: Settings, engine: sa.Engine) -> None:
    binary = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=1, rows_per_day=5)
    with engine.begin() as conn:
        ensure_predictions_table(conn, binary)
    spec = _multiclass_toy(settings.schema)  # the same predictions.table, now for a multiclass model
    expected = (r"model 'toy' \(task multiclass\): .*toy_predictions has column 'predicted_label' of type smallint, "
                r"a multiclass model stages it as text: the table was created for a model of another task")
    with engine.begin() as conn, pytest.raises(PublishError, match=expected):
        create_staging(conn, spec, staging_table(spec, "mc"))


class Unnormalised(BaseEstimator, ClassifierMixin):
    """A broken multiclass estimator: for rows whose first (scaled) feature is positive it adds 0.1 * (1 - p) to
    the first class's probability p, so those rows' probabilities stay in [0, 1] but sum to more than 1."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner

    def fit(self, x: pd.DataFrame, y: np.ndarray) -> Unnormalised:
        self.inner = LogisticRegression().fit(x, y)
        self.classes_ = self.inner.classes_
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.inner.predict_proba(x).copy()
        broken = x[:, 0] > 0  # the pipeline's transformed features: column 0 is x1, scaled
        p[broken, 0] += 0.1 * (1 - p[broken, 0])
        return p


def test_a_model_whose_probabilities_do_not_sum_to_1_fails_the_audit_and_publishes_nothing(
        settings: Settings, engine: sa.Engine) -> None:
    spec = _multiclass_toy(settings.schema)
    frame = load_toy_data(engine, settings.schema, FIRST, days=25)
    frame["y"] = np.where(frame["x2"] > 0.8, "high", frame["y"].astype(str))  # classes "0", "1", "high"
    pipeline = build_pipeline(spec)
    pipeline.steps[-1] = ("model", Unnormalised())
    pipeline.fit(feature_frame(frame, spec), frame["y"].to_numpy(dtype=object))
    registry.register(engine, spec, pipeline, registry.NewVersion(metrics={}, classes=class_names(pipeline)),
                      actor="t")
    plan = plan_run(engine, spec, DAY, run_id="sum", version=1)
    score_shard(engine, plan, 0)

    day = frame[frame["event_time"].map(lambda t: t.date()) == DAY]
    scaled_x1 = pipeline.named_steps["features"].transform(feature_frame(day, spec))[:, 0]
    broken = int((scaled_x1 > 0).sum())
    assert 0 < broken < len(day)
    expected = (rf"model 'toy' day 2026-05-21: staging audit failed: {broken} rows whose class probabilities do "
                r"not sum to 1 \(within 1e-06\); nothing was published$")
    with pytest.raises(PublishError, match=expected):
        publish_run(engine, plan)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {spec.predictions.table}")).scalar_one() == 0
        run = conn.execute(sa.text(
            f'SELECT status, error FROM "{settings.schema}".runs WHERE run_id = :r'), {"r": "sum"}).one()
    assert run.status == "failed" and f"{broken} rows whose class probabilities do not sum to 1" in run.error

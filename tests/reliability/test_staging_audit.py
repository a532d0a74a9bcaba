"""Issue 10 row 4 (the publish side): the staging audit refuses ±Infinity scores for any model, and scores
outside [0, 1] for a binary model, naming the counts; nothing is published."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.errors import PublishError
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
                                            "estimator": "sklearn.linear_model.LinearRegression", "params": {}})
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

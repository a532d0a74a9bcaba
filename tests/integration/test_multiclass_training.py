"""A multiclass model trained, registered, verified and gated on the four-queue ticket source (real PostgreSQL).

The tickets are `ml_batch.demo.tickets.generate`'s, written into the test's own schema (never the shared `demo`
schema), and the spec is `docs/examples/ticket_queue.yaml` pointed at them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from ml_batch.config import Settings
from ml_batch.demo.tickets import QUEUES, TicketQueueConfig, generate
from ml_batch.errors import TrainingError
from ml_batch.model import registry, verify
from ml_batch.model.training import train
from ml_batch.promotion.retrain import train_and_register
from ml_batch.spec import Spec

pytestmark = pytest.mark.integration

TICKET_SPEC = Path(__file__).resolve().parents[2] / "docs" / "examples" / "ticket_queue.yaml"
END = dt.date(2026, 5, 20)
AS_OF = END


def _seed(engine: sa.Engine, schema: str) -> None:
    tickets, labels = generate(TicketQueueConfig(end_date=END, days=30, rows_per_day=80, shift_days=0))
    tickets.to_sql("tickets", engine, schema=schema, index=False)
    labels.to_sql("ticket_queues", engine, schema=schema, index=False)


def _spec(schema: str, **training: Any) -> Spec:
    data = yaml.safe_load(TICKET_SPEC.read_text())
    data["source"]["table"] = f"{schema}.tickets"
    data["labels"]["table"] = f"{schema}.ticket_queues"
    data["predictions"]["table"] = f"{schema}.ticket_queue"
    data["validation"]["min_rows"] = 1
    data["training"].update({"window_days": 21, "holdout_days": 7, "min_score": None, **training})
    return Spec.model_validate(data)


def _with_params(spec: Spec, **params: Any) -> Spec:
    data = spec.model_dump(mode="json")
    data["model"]["params"] = {**data["model"]["params"], **params}
    return Spec.model_validate(data)


@pytest.fixture()
def spec(settings: Settings, engine: sa.Engine) -> Spec:
    _seed(engine, settings.schema)
    return _spec(settings.schema)


def test_a_four_class_model_records_its_classes_and_class_counts_and_verifies(engine: sa.Engine, spec: Spec) -> None:
    outcome = train_and_register(engine, spec, AS_OF, actor="t")
    version = outcome.version
    assert version.task == "multiclass"
    assert version.classes == sorted(QUEUES)
    counts = version.class_counts
    assert counts is not None and set(counts) == {"train", "holdout"}
    assert sum(counts["train"].values()) == version.n_train
    assert sum(counts["holdout"].values()) == version.n_holdout
    assert set(counts["train"]) == set(QUEUES)
    metrics = version.metrics
    assert {"log_loss", "accuracy", "macro_f1", "roc_auc_ovr", "balanced_accuracy"} <= set(metrics)
    assert metrics["n_unseen"] == 0 and metrics["n"] == version.n_holdout
    # learnable: better than always predicting the mix (log loss of 4 roughly even classes is ~1.38)
    assert metrics["log_loss"] < 1.2 and metrics["accuracy"] > 0.4
    sample = verify.stored_sample(engine, spec.name, version.version)
    assert sample is not None and len(sample["scores"][0]) == len(QUEUES)
    assert np.allclose(np.asarray(sample["scores"]).sum(axis=1), 1.0)
    verified = verify.verify_version(engine, spec, version.version, actor="t")
    assert verified.max_abs_diff <= verify.DEFAULT_TOLERANCE


def test_a_class_with_fewer_training_rows_than_min_class_rows_fails_training_naming_it(
        settings: Settings, engine: sa.Engine, spec: Spec) -> None:
    s = settings.schema
    with engine.begin() as conn:  # keep 3 'sales' labels only, of tickets opened on a training day
        conn.execute(sa.text(
            f"DELETE FROM \"{s}\".ticket_queues WHERE queue = 'sales' AND ticket_id NOT IN (SELECT q.ticket_id "
            f"FROM \"{s}\".ticket_queues q JOIN \"{s}\".tickets t USING (ticket_id) WHERE q.queue = 'sales' "
            "AND t.opened_at >= '2026-05-01' ORDER BY q.ticket_id LIMIT 3)"))
    with pytest.raises(TrainingError, match=r"fewer than training.min_class_rows \(20\) rows of class\(es\) "
                                            r"'sales' \(3 rows\)"):
        train(engine, spec, AS_OF)


def test_the_gate_promotes_a_better_multiclass_candidate_and_rejects_a_worse_one(engine: sa.Engine,
                                                                                  spec: Spec) -> None:
    weak = _with_params(spec, C=1e-5)  # so regularised it predicts little more than the class mix
    first = train_and_register(engine, weak, AS_OF, actor="t", promote=True)
    assert first.action == "promoted"  # no champion, no floor
    better = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert better.action == "promoted", better.decision
    assert better.decision is not None and better.decision.champion_score is not None
    assert better.decision.candidate_score < better.decision.champion_score  # log loss: lower is better
    worse = train_and_register(engine, weak, AS_OF, actor="t", promote=True)
    assert worse.action == "rejected", worse.decision
    assert registry.aliases(engine, spec.name)[registry.CHAMPION] == better.version.version


def test_a_champion_without_a_class_the_candidate_has_is_judged_on_the_union_of_classes(
        settings: Settings, engine: sa.Engine, spec: Spec) -> None:
    s = settings.schema
    with engine.begin() as conn:  # the champion is trained without the 'other' queue
        conn.execute(sa.text(f"CREATE TABLE \"{s}\".all_queues AS SELECT * FROM \"{s}\".ticket_queues"))
        conn.execute(sa.text(f"DELETE FROM \"{s}\".ticket_queues WHERE queue = 'other'"))
    champion = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert champion.version.classes == sorted(set(QUEUES) - {"other"})
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO \"{s}\".ticket_queues SELECT * FROM \"{s}\".all_queues "
                             "WHERE queue = 'other'"))
    candidate = train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    assert candidate.version.classes == sorted(QUEUES)
    # the champion gives 'other' rows probability 0 (log loss of 1e-15 on them): the candidate wins
    assert candidate.action == "promoted", candidate.decision
    assert candidate.decision is not None and candidate.decision.champion_score is not None
    assert candidate.decision.champion_score > 3 * candidate.decision.candidate_score

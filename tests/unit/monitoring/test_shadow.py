"""The pure steps of shadow scoring (`ml_batch.monitoring.shadow`): the challenger's rows, the streamed tally
and the shadow table, for binary and multiclass models."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml_batch.monitoring.published import PREDICTED_COLUMN, SCORE_COLUMN, VERSION_COLUMN
from ml_batch.monitoring.shadow import ShadowTally, batch_tally, challenger_rows, comparison_of, shadow_table
from ml_batch.spec import Spec
from tests.integration.helpers import toy_spec

DAY = dt.date(2026, 5, 10)
CLASSES = ("billing", "other", "technical")


def _multiclass(spec: Spec) -> Spec:
    return spec.model_copy(update={"model": spec.model.model_copy(update={"task": "multiclass"})})


def test_the_tally_of_batches_gives_the_agreement_and_correlation_of_all_rows() -> None:
    spec = toy_spec("s")
    rng = np.random.default_rng(7)
    x = rng.random(1000)
    y = np.clip(x + rng.normal(0, 0.1, 1000), 0, 1)
    tally = ShadowTally()
    for part in np.array_split(np.arange(1000), 3):
        frame = pd.DataFrame({SCORE_COLUMN: x[part], VERSION_COLUMN: 4})
        tally = tally.plus(batch_tally(spec, frame, challenger_rows(spec, y[part])))
    threshold = spec.predictions.threshold
    comparison = comparison_of(spec, DAY, 5, tally)
    assert comparison["n"] == 1000 and comparison["champion_version"] == 4 and comparison["challenger_version"] == 5
    assert comparison["agreement"] == pytest.approx(((x >= threshold) == (y >= threshold)).mean())
    assert comparison["score_correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)


def test_a_constant_side_has_no_correlation() -> None:
    spec = toy_spec("s")
    frame = pd.DataFrame({SCORE_COLUMN: [0.2, 0.4, 0.6], VERSION_COLUMN: 1})
    assert batch_tally(spec, frame, challenger_rows(spec, np.full(3, 0.5))).correlation() is None


def test_shadow_rows_carry_the_key_as_text_and_the_predicted_label() -> None:
    spec = toy_spec("s")
    batch = pa.record_batch({"id": pa.array([7, 8], pa.int64())})
    table = shadow_table(spec, DAY, 5, batch, challenger_rows(spec, np.array([0.9, 0.1])), run_id="r")
    assert table.column("entity_key").to_pylist() == ["7", "8"]
    assert table.column("predicted_label").to_pylist() == [1, 0]
    assert table.column("model_version").to_pylist() == [5, 5] and table.column("run_id").to_pylist() == ["r", "r"]
    assert "class_scores" not in table.column_names and "predicted_class" not in table.column_names


def test_a_multiclass_challengers_rows_hold_its_top_class_its_probability_and_every_class() -> None:
    spec = _multiclass(toy_spec("s"))
    proba = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.4, 0.4, 0.2]])  # the last row ties: the first wins
    rows = challenger_rows(spec, proba, CLASSES)
    assert rows.label is None and rows.classes is not None
    assert rows.classes.predicted.tolist() == ["technical", "billing", "billing"]
    assert rows.score.tolist() == [0.5, 0.6, 0.4]

    batch = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())})
    table = shadow_table(spec, DAY, 2, batch, rows, run_id="r")
    assert table.column("predicted_class").to_pylist() == ["technical", "billing", "billing"]
    assert table.column("predicted_label").null_count == 3 and table.column("score").to_pylist() == [0.5, 0.6, 0.4]
    # jsonb in COPY's binary form: a version byte, then the JSON object of every class's probability
    stored = [json.loads(value[1:]) for value in table.column("class_scores").to_pylist()]
    assert all(value[:1] == b"\x01" for value in table.column("class_scores").to_pylist())
    assert [list(s) for s in stored] == [list(CLASSES)] * 3
    assert [s[c] for s in stored for c in CLASSES] == proba.ravel().tolist()
    assert all(sum(s.values()) == pytest.approx(1.0, abs=1e-12) for s in stored)


def test_multiclass_agreement_is_the_share_of_rows_with_the_champions_class_and_has_no_correlation() -> None:
    spec = _multiclass(toy_spec("s"))
    proba = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1], [0.1, 0.8, 0.1], [0.7, 0.2, 0.1]])
    published = pd.DataFrame({SCORE_COLUMN: [0.9, 0.5, 0.4, 0.6], VERSION_COLUMN: 3,
                              PREDICTED_COLUMN: ["technical", "other", "other", "billing"]})
    tally = ShadowTally()
    for part in (slice(0, 3), slice(3, 4)):
        tally = tally.plus(batch_tally(spec, published.iloc[part], challenger_rows(spec, proba[part], CLASSES)))
    comparison = comparison_of(spec, DAY, 4, tally)
    assert (comparison["n"], comparison["champion_version"]) == (4, 3)
    assert comparison["agreement"] == pytest.approx(3 / 4)  # row 2: champion "other", challenger "billing"
    assert comparison["score_correlation"] is None


def test_a_multiclass_challenger_without_its_class_names_is_refused() -> None:
    with pytest.raises(ValueError, match=r"model 'toy' is multiclass: its challenger's class names are needed"):
        challenger_rows(_multiclass(toy_spec("s")), np.array([[0.5, 0.5]]))


def test_a_regression_challenger_has_no_label_and_no_agreement_but_a_correlation() -> None:
    base = toy_spec("s")
    spec = base.model_copy(update={"model": base.model.model_copy(update={"task": "regression"})})
    rows = challenger_rows(spec, np.array([1.0, 2.0, 4.0]))
    assert rows.label is None and rows.classes is None
    frame = pd.DataFrame({SCORE_COLUMN: [1.5, 2.5, 3.5], VERSION_COLUMN: 1})
    comparison = comparison_of(spec, DAY, 2, batch_tally(spec, frame, rows))
    assert comparison["agreement"] is None
    assert comparison["score_correlation"] == pytest.approx(np.corrcoef([1.5, 2.5, 3.5], [1.0, 2.0, 4.0])[0, 1])
    table = shadow_table(spec, DAY, 2, pa.record_batch({"id": pa.array([1, 2, 3], pa.int64())}), rows, run_id="r")
    assert table.column("predicted_label").null_count == 3

"""The pure steps of shadow scoring (`ml_batch.monitoring.shadow`): the streamed tally and the rows."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ml_batch.monitoring.published import SCORE_COLUMN, VERSION_COLUMN
from ml_batch.monitoring.shadow import ShadowTally, batch_tally, comparison_of, shadow_table
from tests.integration.helpers import toy_spec

DAY = dt.date(2026, 5, 10)


def test_the_tally_of_batches_gives_the_agreement_and_correlation_of_all_rows() -> None:
    spec = toy_spec("s")
    rng = np.random.default_rng(7)
    x = rng.random(1000)
    y = np.clip(x + rng.normal(0, 0.1, 1000), 0, 1)
    tally = ShadowTally()
    for part in np.array_split(np.arange(1000), 3):
        frame = pd.DataFrame({SCORE_COLUMN: x[part], VERSION_COLUMN: 4})
        tally = tally.plus(batch_tally(spec, frame, y[part]))
    threshold = spec.predictions.threshold
    comparison = comparison_of(spec, DAY, 5, tally)
    assert comparison["n"] == 1000 and comparison["champion_version"] == 4 and comparison["challenger_version"] == 5
    assert comparison["agreement"] == pytest.approx(((x >= threshold) == (y >= threshold)).mean())
    assert comparison["score_correlation"] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)


def test_a_constant_side_has_no_correlation() -> None:
    spec = toy_spec("s")
    frame = pd.DataFrame({SCORE_COLUMN: [0.2, 0.4, 0.6], VERSION_COLUMN: 1})
    assert batch_tally(spec, frame, np.full(3, 0.5)).correlation() is None


def test_shadow_rows_carry_the_key_as_text_and_the_predicted_label() -> None:
    spec = toy_spec("s")
    batch = pa.record_batch({"id": pa.array([7, 8], pa.int64())})
    table = shadow_table(spec, DAY, 5, batch, np.array([0.9, 0.1]), run_id="r")
    assert table.column("entity_key").to_pylist() == ["7", "8"]
    assert table.column("predicted_label").to_pylist() == [1, 0]
    assert table.column("model_version").to_pylist() == [5, 5] and table.column("run_id").to_pylist() == ["r", "r"]

"""The pure steps of realized and estimated performance (`ml_batch.monitoring.performance`)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml_batch.model.labels import LABEL
from ml_batch.monitoring.estimate import fit_score_calibration
from ml_batch.monitoring.performance import (
    calibration_by_decile,
    estimate_records,
    labelled_day,
    realized_records,
)
from tests.integration.helpers import toy_spec

DAY = dt.date(2026, 5, 10)


def test_realized_records_per_version_and_kind_are_the_metrics_of_their_rows() -> None:
    spec = toy_spec("s")
    rng = np.random.default_rng(4)
    scores = rng.random(400)
    labels = (rng.random(400) < scores).astype(int)
    data = pd.DataFrame({"model_version": np.repeat([1, 2], 200), "kind": np.repeat(["published", "shadow"], 200),
                         "score": scores, LABEL: labels})
    records = realized_records(spec, DAY, data)
    auc = {(r["model_version"], r["detail"]["kind"]): r for r in records if r["metric"] == "roc_auc"}
    assert set(auc) == {(1, "published"), (2, "shadow")}
    assert auc[1, "published"]["value"] == pytest.approx(roc_auc_score(labels[:200], scores[:200]))
    assert auc[1, "published"]["n"] == 200 and auc[1, "published"]["partition_date"] == DAY
    assert len(auc[2, "shadow"]["detail"]["calibration"]) == 10
    assert {r["metric"] for r in records} >= {"roc_auc", "calibration_error"}
    assert all(type(r["model_version"]) is int for r in records)
    json.dumps([r["detail"] for r in records], allow_nan=False)


def test_estimate_records_are_the_stored_label_free_metrics() -> None:
    spec = toy_spec("s")
    rng = np.random.default_rng(5)
    holdout = rng.random(2000)
    calibration = fit_score_calibration(holdout, (rng.random(2000) < holdout).astype(int))
    records = estimate_records(spec, DAY, 3, rng.random(500), calibration, run_id="r")
    assert [r["metric"] for r in records] == ["estimated_roc_auc", "estimated_accuracy"]
    assert all(r["n"] == 500 and r["model_version"] == 3 and r["detail"]["kind"] == "estimated" for r in records)
    assert "no concept drift" in records[0]["detail"]["assumption"] and records[0]["detail"]["run_id"] == "r"
    json.dumps([r["detail"] for r in records], allow_nan=False)


def test_calibration_by_decile_covers_every_row_in_score_order() -> None:
    rng = np.random.default_rng(6)
    scores = rng.random(1005)
    y = (rng.random(1005) < scores).astype(int)
    deciles = calibration_by_decile(y, scores)
    assert [d["decile"] for d in deciles] == list(range(1, 11)) and sum(d["n"] for d in deciles) == 1005
    means = [d["mean_score"] for d in deciles]
    assert means == sorted(means)


def test_the_labelled_day_is_delay_days_before() -> None:
    assert labelled_day(toy_spec("s", delay_days=3), DAY) == dt.date(2026, 5, 7)

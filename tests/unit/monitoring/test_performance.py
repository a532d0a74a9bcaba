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
from ml_batch.monitoring.loss_estimate import fit_loss_model
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
    profile = {"score_calibration": fit_score_calibration(holdout, (rng.random(2000) < holdout).astype(int))}
    records = estimate_records(spec, DAY, 3, rng.random(500), profile, run_id="r")
    assert [r["metric"] for r in records] == ["estimated_roc_auc", "estimated_accuracy"]
    assert all(r["n"] == 500 and r["model_version"] == 3 and r["detail"]["kind"] == "estimated" for r in records)
    assert "no concept drift" in records[0]["detail"]["assumption"] and records[0]["detail"]["run_id"] == "r"
    assert records[0]["detail"]["reliable"] is True and records[0]["detail"]["unreliable_reasons"] == []
    assert records[0]["detail"]["holdout_positive_rate"] == pytest.approx(0.5, abs=0.03)
    json.dumps([r["detail"] for r in records], allow_nan=False)


def test_an_estimate_on_shifted_or_out_of_support_rows_is_stored_as_unreliable_with_its_reasons() -> None:
    spec = toy_spec("s")
    rng = np.random.default_rng(6)
    holdout = rng.random(2000) * 0.6  # the holdout's scores stop at 0.6, its positive rate ~0.3
    profile = {"score_calibration": fit_score_calibration(holdout, (rng.random(2000) < holdout).astype(int))}
    day = 0.4 + 0.6 * rng.random(500)
    records = estimate_records(spec, DAY, 1, day, profile, run_id="r", out_of_support=["x1"])
    detail = records[0]["detail"]
    assert detail["reliable"] is False
    reasons = detail["unreliable_reasons"]
    assert reasons[0] == "features out of support: x1"
    share = np.mean(day > holdout.max())
    assert share > 0.6 and reasons[1] == (f"{share:.0%} of the day's scores are outside the holdout's range "
                                          f"{holdout.min():.4g}..{holdout.max():.4g} the estimate was fitted on "
                                          "(at most 5%)")
    assert reasons[2].startswith("expected positive rate ")
    # a calibration map stored before the holdout's positive rate: the check is named as not made
    old = {"score_calibration": {k: v for k, v in profile["score_calibration"].items() if k != "positive_rate"}}
    detail = estimate_records(spec, DAY, 1, rng.random(500) * 0.6, old, run_id="r")[0]["detail"]
    assert detail["reliable"] is True
    assert detail["reliability_unchecked"] == [
        "expected positive rate against the holdout's (not stored in the version's profile)"]


def test_a_regression_estimate_gives_mae_and_rmse_from_the_loss_model() -> None:
    spec = toy_spec("s", model={"task": "regression", "estimator": "sklearn.linear_model.Ridge", "params": {}},
                    training={"window_days": 10, "holdout_days": 3, "metric": "mae", "min_score": 30.0})
    rng = np.random.default_rng(7)
    predictions = rng.uniform(10, 100, 3000)
    profile = {"loss_model": fit_loss_model(predictions, predictions + rng.normal(0, 5, 3000))}
    day = rng.uniform(10, 100, 400)
    records = {r["metric"]: r for r in estimate_records(spec, DAY, 2, day, profile, run_id="r")}
    assert set(records) == {"estimated_mae", "estimated_rmse"}
    assert records["estimated_mae"]["value"] == pytest.approx(5 * np.sqrt(2 / np.pi), rel=0.1)
    assert records["estimated_rmse"]["value"] == pytest.approx(5, rel=0.1)
    detail = records["estimated_mae"]["detail"]
    assert detail["kind"] == "estimated" and "no concept drift" in detail["assumption"] and detail["reliable"]
    above = estimate_records(spec, DAY, 2, day + 200, profile, run_id="r", out_of_support=["store_size"])
    assert above[0]["detail"]["unreliable_reasons"] == [
        "features out of support: store_size",
        f"100% of the day's predictions are outside the holdout's range {predictions.min():.4g}.."
        f"{predictions.max():.4g} the estimate was fitted on (at most 5%)"]
    assert estimate_records(spec, DAY, 2, day, {}, run_id="r") == []  # a holdout too small: no loss model


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


def _ticket_spec():  # the multiclass example spec
    from ml_batch.spec import load_spec
    from tests.unit.monitoring.data import REPO

    return load_spec(REPO / "docs" / "examples" / "ticket_queue.yaml")


def test_realized_multiclass_records_leave_unseen_classes_out_and_count_them() -> None:
    from sklearn.metrics import log_loss

    spec = _ticket_spec()
    classes = ["billing", "sales", "technical"]
    rng = np.random.default_rng(5)
    proba = rng.dirichlet((2, 2, 2), size=300)
    labels = np.asarray(classes, dtype=object)[[rng.choice(3, p=p) for p in proba]]
    labels[:7] = "refunds"  # a class the version was never trained on
    data = pd.DataFrame({"model_version": 3, "kind": "published", "score": proba.max(axis=1), LABEL: labels,
                         "class_scores": [json.dumps(dict(zip(classes, p.tolist(), strict=True))) for p in proba]})
    records = {r["metric"]: r for r in realized_records(spec, DAY, data, {3: classes})}
    assert set(records) == {"log_loss", "accuracy", "macro_f1", "roc_auc_ovr", "balanced_accuracy"}
    assert records["log_loss"]["value"] == pytest.approx(log_loss(labels[7:], proba[7:], labels=classes))
    assert records["log_loss"]["n"] == 293
    assert records["log_loss"]["detail"] == {"kind": "published", "labelled": 300, "n_unseen": 7,
                                             "unseen_classes": {"refunds": 7}}


def test_realized_multiclass_records_need_the_version_classes() -> None:
    data = pd.DataFrame({"model_version": [4], "kind": ["published"], "score": [0.9], LABEL: ["sales"],
                         "class_scores": ['{"sales": 0.9, "billing": 0.1}']})
    with pytest.raises(ValueError, match="version 4 of model 'ticket_queue' has no class names"):
        realized_records(_ticket_spec(), DAY, data, {})


def test_a_multiclass_estimate_is_stored_as_unavailable_with_the_reason() -> None:
    spec = _ticket_spec()
    (record,) = estimate_records(spec, DAY, 2, np.full(50, 0.6), {}, run_id="r1")
    assert record["metric"] == "estimated_log_loss" and record["value"] is None and record["n"] == 50
    assert record["detail"]["available"] is False and record["detail"]["reliable"] is False
    assert "no label-free estimate for multiclass models" in record["detail"]["unreliable_reasons"][0]


def test_a_multiclass_shadow_comparison_judges_both_models_over_the_union_of_their_classes() -> None:
    from ml_batch.model.metrics import shared_class_scores
    from ml_batch.monitoring.performance import shadow_class_metrics

    spec = _ticket_spec()
    old, new = ["billing", "sales"], ["billing", "sales", "technical"]  # the challenger learned 'technical'
    rng = np.random.default_rng(11)
    labels = np.asarray(new, dtype=object)[rng.choice(3, size=200, p=[0.4, 0.4, 0.2])]
    champion, challenger = rng.dirichlet((2, 2), size=200), rng.dirichlet((2, 2, 2), size=200)

    def rows(version: int, kind: str, classes: list[str], proba: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"model_version": version, "kind": kind, "score": proba.max(axis=1), LABEL: labels,
                             "class_scores": [json.dumps(dict(zip(classes, p.tolist(), strict=True))) for p in proba]})

    data = pd.concat([rows(1, "published", old, champion), rows(2, "shadow", new, challenger)], ignore_index=True)
    (champ, chall), = shadow_class_metrics(spec, data, {1: old, 2: new}).values()
    expected = shared_class_scores("log_loss", labels, (challenger, new), (champion, old))
    assert (chall[0], champ[0]) == pytest.approx(expected)
    assert champ[1] == chall[1] == 200  # the 'technical' rows count against the champion, not left out
    # its own realized record still leaves them out (they are unseen classes of version 1)
    own = {(r["model_version"], r["metric"]): r for r in realized_records(spec, DAY, data, {1: old, 2: new})}
    assert own[(1, "log_loss")]["n"] == 200 - int((labels == "technical").sum())
    assert own[(1, "log_loss")]["value"] < champ[0]


def test_a_shadow_comparison_without_a_defined_metric_is_none_not_nan() -> None:
    # NaN counted as a labelled day: its mean made the challenger "worse than the champion" and demoted it.
    from ml_batch.monitoring.performance import shadow_class_metrics

    spec = _ticket_spec()
    classes = ["billing", "sales"]
    data = pd.DataFrame({"model_version": [1, 2], "kind": ["published", "shadow"], "score": [0.6, 0.7],
                         LABEL: ["technical", "technical"],  # a class neither model knows: no row left
                         "class_scores": ['{"billing": 0.6, "sales": 0.4}', '{"billing": 0.3, "sales": 0.7}']})
    assert shadow_class_metrics(spec, data, {1: classes, 2: classes}) == {(1, 2): ((None, 0), (None, 0))}

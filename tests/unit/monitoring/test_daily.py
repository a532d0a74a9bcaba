"""The daily drift check's pure steps (`ml_batch.monitoring.daily`): the typed result and its XCom, the
sustained status, and the rows stored for a day."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pydantic
import pytest

from ml_batch.monitoring.daily import DayDrift, drift_result_records, sustained_status
from ml_batch.monitoring.drift import check_drift
from ml_batch.monitoring.rows import DriftRow
from ml_batch.spec import Spec
from tests.unit.monitoring.data import make_frame

DAY = dt.date(2026, 6, 1)

# A checked summary as `check_day_drift` returned it before it was typed (the drift task's XCom).
CHECKED: dict[str, Any] = {
    "status": "checked", "model": "credit_default", "day": "2026-06-01", "version": 3, "rows_checked": 2000,
    "rows_published": 2040, "dataset_drift": True, "score_drift": False, "share": 0.2727,
    "drifted_features": ["income", "age", "channel"], "no_values": ["channel"], "threshold_source": "calibrated",
    "weighted_share": None,
    "share_basis": "count", "window_drift": True, "window_days": 1, "sustained_drift": True,
    "drifted_days": ["2026-05-31", "2026-06-01"], "estimated": {"estimated_roc_auc": 0.8123},
    "out_of_support": [{"feature": "income", "share": 0.97, "direction": "above",
                        "bound": "above the training maximum 62.1", "value": 62.1, "categories": []}],
    "multivariate_drift": False, "estimate_reliable": False,
    "estimate_reasons": ["features out of support: income"], "notes": [],
    "report": "/tmp/drift/credit_default/2026-06-01.html", "seconds": 1.234,
}
SKIPPED: dict[str, Any] = {"status": "skipped", "reason": "nothing published for 2026-06-01",
                           "dataset_drift": False, "sustained_drift": False}


def test_the_xcom_of_a_checked_day_is_the_summary_it_replaces() -> None:
    summary = DayDrift.from_xcom(CHECKED)
    assert summary.day == DAY and summary.drifted_days == (dt.date(2026, 5, 31), DAY)
    xcom = summary.to_xcom()
    # A summary stored before the multiclass fields reads back with them empty (not a multiclass model).
    added = {"class_drift": None, "unseen_classes": []}
    assert xcom == {**CHECKED, **added}
    assert list(xcom) == [*[k for k in CHECKED if k not in ("report", "seconds")], *added, "report", "seconds"]
    assert json.loads(json.dumps(xcom)) == xcom
    assert DayDrift.from_xcom(xcom) == summary


def test_the_xcom_of_a_skipped_day_holds_its_four_keys_only() -> None:
    skipped = DayDrift.skipped("nothing published for 2026-06-01")
    assert skipped.to_xcom() == SKIPPED and list(skipped.to_xcom()) == list(SKIPPED)
    assert DayDrift.from_xcom(SKIPPED) == skipped


def test_a_checked_summary_without_a_key_is_refused_naming_it() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"missing \['report'\]"):
        DayDrift.from_xcom({k: v for k, v in CHECKED.items() if k != "report"})
    with pytest.raises(pydantic.ValidationError, match="window_verdict"):
        DayDrift.from_xcom({**CHECKED, "window_verdict": True})
    with pytest.raises(pydantic.ValidationError, match=r"a skipped drift check holds a reason and only"):
        DayDrift(status="skipped", reason="dry run", model="m")


def test_sustained_drift_needs_alert_after_days_of_the_last_of(spec: Spec) -> None:
    rule = spec.drift.alert_after
    assert (rule.days, rule.of) == (2, 3)
    one = sustained_status(spec, DAY, [], drifted_today=True)
    assert one.drifted_days == (DAY,) and not one.sustained_drift
    two = sustained_status(spec, DAY, [DAY - dt.timedelta(days=2)], drifted_today=True)
    assert two.sustained_drift
    assert two.as_detail() == {"days": 2, "of": 3, "drifted_days": ["2026-05-30", "2026-06-01"],
                               "sustained_drift": True}
    assert not sustained_status(spec, DAY, [DAY - dt.timedelta(days=1)], drifted_today=False).sustained_drift


def test_stored_statistics_are_plain_json_whatever_numpy_put_in_them() -> None:
    # One rule for JSON-safe values (ml_batch.jsonvalues): numpy bools and float32s, NaN and dates in a row's
    # detail become JSON booleans, floats, null and ISO text, as PostgreSQL's jsonb and any reader take them.
    row = DriftRow("age", "psi", np.float32(0.25), 0.2, None, True,
                   {"flags": [np.bool_(True), np.bool_(False)], "share": np.float32(0.5), "mean": np.float64("nan"),
                    "first_day": dt.date(2026, 5, 1), "count": np.int64(7)})
    [record] = drift_result_records("credit_default", DAY, 3, "run", [row])
    detail = record["detail"]
    assert json.loads(json.dumps(detail, allow_nan=False)) == {
        "flags": [True, False], "share": 0.5, "mean": None, "first_day": "2026-05-01", "count": 7}
    assert type(detail["flags"][0]) is bool and type(detail["share"]) is float
    assert type(record["value"]) is float and record["value"] == 0.25


def test_stored_statistics_of_a_feature_without_values_hold_no_null_value(
    spec: Spec, profile: dict[str, Any]
) -> None:
    frame, scores = make_frame(300, seed=5)
    result = check_drift(spec, profile, frame.assign(income=np.nan, channel=None), scores)
    records = drift_result_records("credit_default", DAY, 3, "run", result.rows)
    assert all(record["value"] is not None and record["drifted"] is not None for record in records)
    assert {(r["feature"], r["test"]) for r in records if r["detail"].get("status") == "no values"} == {
        ("income", "psi"), ("income", "null_share"),
        ("channel", "psi"), ("channel", "js"), ("channel", "chi2"), ("channel", "null_share")}


def test_a_statistic_that_is_not_a_number_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"ks of feature 'age' is nan: expected a finite number"):
        DriftRow("age", "ks", float("nan"), 0.1, None, False)

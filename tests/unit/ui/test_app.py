"""The pure parts of the pages (`ml_batch.ui.app`) a multiclass model adds: its classes table, its class mix
per day, its unseen classes and its class-drift days, from rows as the queries return them."""

from __future__ import annotations

import datetime as dt

from ml_batch.ui.app import class_drift_days, class_mix_table, class_rows, unseen_rows

D1, D2 = dt.date(2026, 6, 1), dt.date(2026, 6, 2)


def test_class_rows_lists_each_multiclass_versions_classes_in_its_order_and_none_of_a_binary_version() -> None:
    versions = [
        {"version": 2, "classes": ["b", "a"], "class_counts": {"holdout": {"a": 3, "b": 4}}},  # registered
        {"version": 1, "classes": None, "class_counts": None},  # binary
    ]
    assert class_rows(versions) == [{"version": 2, "class_name": "b", "train": None, "holdout": 4},
                                    {"version": 2, "class_name": "a", "train": None, "holdout": 3}]
    assert class_rows([{"version": 1, "task": "binary"}]) == []  # a row from before the columns existed


def test_class_mix_table_fills_a_class_not_predicted_on_a_day_with_zero_newest_day_first() -> None:
    mix = [{"partition_date": D1, "predicted_label": "a", "rows": 3, "share": 0.75},
           {"partition_date": D1, "predicted_label": "b", "rows": 1, "share": 0.25},
           {"partition_date": D2, "predicted_label": "b", "rows": 2, "share": 1.0}]
    table = class_mix_table(mix)
    assert table["classes"] == ["a", "b"]
    assert [(d["day"], d["rows"], d["counts"], d["shares"]) for d in table["days"]] == [
        (D2, 2, {"a": 0, "b": 2}, {"a": 0.0, "b": 1.0}), (D1, 4, {"a": 3, "b": 1}, {"a": 0.75, "b": 0.25})]
    assert class_mix_table([]) == {"classes": [], "days": []}


def test_unseen_rows_gives_one_entry_per_day_version_and_kind_with_unseen_labels() -> None:
    detail = {"kind": "published", "n_unseen": 2, "unseen_classes": {"refunds": 2}}
    rows = [{"partition_date": D1, "model_version": 1, "metric": m, "detail": detail} for m in ("log_loss", "accuracy")]
    rows.append({"partition_date": D2, "model_version": 1, "metric": "log_loss",
                 "detail": {"kind": "published", "n_unseen": 0, "unseen_classes": {}}})
    rows.append({"partition_date": D2, "model_version": 1, "metric": "roc_auc", "detail": {"kind": "published"}})
    assert unseen_rows(rows) == [{"day": D1, "version": 1, "rows": 2, "classes": {"refunds": 2}}]


def test_class_drift_days_skips_days_without_a_class_verdict() -> None:
    days = [{"partition_date": D2, "detail": {"summary": {"class_drift": True, "unseen_classes": ["x"]}}},
            {"partition_date": D1, "detail": {"summary": {"class_drift": None}}},  # binary
            {"partition_date": D1, "detail": {}}]  # checked before the summary was stored
    assert class_drift_days(days) == [{"day": D2, "drift": True, "unseen": ["x"]}]

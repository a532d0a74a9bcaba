"""What counts as a changed day (`ml_batch.run.reconcile.changes`), and the report's one (de)serialisation."""

from __future__ import annotations

import datetime as dt

import pytest

from ml_batch.errors import ReconcileFailed
from ml_batch.run.digest import EMPTY_DAY, DayState
from ml_batch.run.reconcile import DayReconcile, PublishedDay, ReconcileReport, changes

DAY = dt.date(2026, 5, 21)
T0 = dt.datetime(2026, 5, 21, 23, tzinfo=dt.UTC)
PUBLISHED = PublishedDay(day=DAY, run_id="r1", version=1, rows=80, key_digest="123", updated_at=T0)


def _entry(status: str, error: str | None = None) -> DayReconcile:
    return DayReconcile(day=DAY, published_run="r1", version=1, published_rows=80, source_rows=105,
                        changes=["rows", "keys"], status=status, run_id="reconcile__x", error=error)  # type: ignore[arg-type]


def test_the_same_state_is_unchanged() -> None:
    assert changes(PUBLISHED, DayState(80, "123", T0), updated_at_column="updated_at") == []


@pytest.mark.parametrize(("now", "expected"), [
    (DayState(105, "456", T0), ["rows", "keys"]),
    (DayState(80, "456", T0), ["keys"]),
    (DayState(80, "123", T0 + dt.timedelta(seconds=1)), ["updated_at"]),
    (EMPTY_DAY, ["rows", "keys", "updated_at"]),
])
def test_each_kind_of_change_is_named(now: DayState, expected: list[str]) -> None:
    assert changes(PUBLISHED, now, updated_at_column="updated_at") == expected


def test_a_run_without_key_digest_is_compared_by_its_row_count_only() -> None:
    old = PublishedDay(day=DAY, run_id="old", version=1, rows=80, key_digest=None, updated_at=None)
    assert changes(old, DayState(80, "456", T0), updated_at_column="updated_at") == []
    assert changes(old, DayState(81, "456", T0), updated_at_column="updated_at") == ["rows"]


def test_updated_at_is_compared_only_when_the_spec_names_the_column() -> None:
    assert changes(PUBLISHED, DayState(80, "123", T0 + dt.timedelta(hours=1)), updated_at_column=None) == []


def test_the_report_survives_xcom_and_names_its_failures() -> None:
    report = ReconcileReport(model="toy", through=None, dry_run=False, check_seconds=0.1,
                             days=[_entry("rescored"), _entry("failed", "volume refused")])
    assert ReconcileReport.from_xcom(report.to_xcom()) == report
    assert report.failed == [report.days[1]]
    with pytest.raises(ReconcileFailed, match=r"^1 of 2 day\(s\) of model 'toy' failed to re-score: "
                                              r"2026-05-21 \(volume refused\)$"):
        report.raise_if_failed()
    ReconcileReport(model="toy", through=None, dry_run=False, check_seconds=0.1,
                    days=[_entry("rescored")]).raise_if_failed()

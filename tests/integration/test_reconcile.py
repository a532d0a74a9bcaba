"""Reconcile (`ml_batch.run.reconcile`) against a real PostgreSQL: published days whose source moved are re-scored
by real runs, once, and a reconcile with nothing changed starts nothing."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.db.tables import alerts, runs
from ml_batch.errors import ReconcileFailed
from ml_batch.run import runs as run_rows
from ml_batch.run.day import score_day
from ml_batch.run.predictions import published_run
from ml_batch.run.reconcile import reconcile
from ml_batch.spec import Spec
from tests.support.toy import DAY, ROWS_PER_DAY

pytestmark = pytest.mark.integration

LATE_ROWS = 25


def add_rows(engine: sa.Engine, spec: Spec, day: dt.date, n: int) -> None:
    """`n` new rows (new keys) for `day` in the toy source, as a late load would add them."""
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"INSERT INTO {spec.source.table} (id, event_time, x1, x2, color) "
            "SELECT (SELECT max(id) FROM " + spec.source.table + ") + g, "
            "CAST(:day AS timestamptz) + interval '23 hours' + g * interval '1 second', "
            "g / 10.0, -g / 10.0, 'red' FROM generate_series(1, :n) AS g"), {"day": day.isoformat(), "n": n})


def day_ids(engine: sa.Engine, spec: Spec, day: dt.date) -> list[int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            f"SELECT id FROM {spec.source.table} WHERE event_time >= :s AND event_time < :e ORDER BY id"),
            {"s": start, "e": start + dt.timedelta(days=1)}).scalars())


def _published(engine: sa.Engine, spec: Spec, day: dt.date) -> dict[int, str]:
    """The day's published rows: key -> run id."""
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(
            f"SELECT id, run_id FROM {spec.predictions.table} WHERE partition_date = :d"), {"d": day}).all())


def _reconcile_runs(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(runs).where(runs.c.run_type == "reconcile")).mappings()]


def _late_alerts(engine: sa.Engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(alerts).where(alerts.c.kind == "late_rows")).mappings()]


def test_late_rows_are_rescored_once_and_alerted(engine: sa.Engine, toy: Spec, tmp_path) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    add_rows(engine, toy, DAY, LATE_ROWS)

    report = reconcile(engine, toy, results_dir=tmp_path)

    published = _published(engine, toy, DAY)
    assert sorted(published) == day_ids(engine, toy, DAY) and len(published) == ROWS_PER_DAY + LATE_ROWS
    [new_run] = _reconcile_runs(engine)
    assert set(published.values()) == {new_run["run_id"]} and new_run["run_id"].startswith(f"reconcile__{DAY}__")
    assert (new_run["status"], new_run["rows_extracted"], new_run["model_version"]) == (
        "success", ROWS_PER_DAY + LATE_ROWS, 1)
    with engine.connect() as conn:
        assert published_run(conn, "toy", DAY) == new_run["run_id"]
    [entry] = report.days
    assert (entry.day, entry.status, entry.published_rows, entry.source_rows, entry.changes, entry.run_id) == (
        DAY, "rescored", ROWS_PER_DAY, ROWS_PER_DAY + LATE_ROWS, ["rows", "keys"], new_run["run_id"])
    [alert] = _late_alerts(engine)
    assert (alert["severity"], alert["partition_date"], alert["run_id"]) == ("warning", DAY, new_run["run_id"])
    assert f"{ROWS_PER_DAY} rows were published" in alert["message"]
    assert f"the source holds {ROWS_PER_DAY + LATE_ROWS}" in alert["message"]
    assert new_run["run_id"] in alert["message"]

    again = reconcile(engine, toy)
    assert [(e.status, e.changes, e.run_id) for e in again.days] == [("unchanged", [], None)]
    assert len(_reconcile_runs(engine)) == 1 and len(_late_alerts(engine)) == 1


def test_a_row_updated_in_place_is_rescored_when_the_spec_names_updated_at(engine: sa.Engine, toy: Spec) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {toy.source.table} ADD COLUMN updated_at timestamptz"))
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET updated_at = event_time"))
    spec = toy.model_copy(update={"source": toy.source.model_copy(update={"updated_at_column": "updated_at"})})
    score_day(engine, spec, DAY, run_id="d1")
    changed = day_ids(engine, spec, DAY)[0]
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {spec.source.table} SET x1 = x1 + 5, updated_at = now() WHERE id = :id"),
                     {"id": changed})

    assert [e.changes for e in reconcile(engine, toy).days] == [[]], "without updated_at_column: unnoticed"
    [entry] = reconcile(engine, spec).days

    assert (entry.status, entry.changes, entry.published_rows, entry.source_rows) == (
        "rescored", ["updated_at"], ROWS_PER_DAY, ROWS_PER_DAY)
    published = _published(engine, spec, DAY)
    assert len(published) == ROWS_PER_DAY and published[changed] == entry.run_id
    assert len(_reconcile_runs(engine)) == 1 and len(_late_alerts(engine)) == 1
    assert [e.status for e in reconcile(engine, spec).days] == ["unchanged"]
    assert len(_reconcile_runs(engine)) == 1 and len(_late_alerts(engine)) == 1


def test_deleted_and_replaced_keys_count_as_changed(engine: sa.Engine, toy: Spec) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    score_day(engine, toy, DAY - dt.timedelta(days=1), run_id="d0")
    ids = day_ids(engine, toy, DAY)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE id = ANY(:ids)"), {"ids": ids[:5]})
        # the day before: one key replaced by another, the count unchanged
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET id = id + 1000000 WHERE id = :id"),
                     {"id": day_ids(engine, toy, DAY - dt.timedelta(days=1))[0]})

    report = reconcile(engine, toy)

    assert [(e.day, e.status, e.changes, e.source_rows) for e in report.days] == [
        (DAY - dt.timedelta(days=1), "rescored", ["keys"], ROWS_PER_DAY),
        (DAY, "rescored", ["rows", "keys"], ROWS_PER_DAY - 5),
    ]
    assert sorted(_published(engine, toy, DAY)) == ids[5:]
    assert len(_reconcile_runs(engine)) == 2 and len(_late_alerts(engine)) == 2


def test_a_run_from_before_key_digests_is_compared_by_its_row_count(engine: sa.Engine, toy: Spec) -> None:
    score_day(engine, toy, DAY, run_id="old")
    with engine.begin() as conn:
        conn.execute(runs.update().where(runs.c.run_id == "old").values(key_digest=None))
        conn.execute(sa.text(f"UPDATE {toy.source.table} SET id = id + 1000000 WHERE id = :id"),
                     {"id": day_ids(engine, toy, DAY)[0]})
    assert [(e.status, e.changes) for e in reconcile(engine, toy).days] == [("unchanged", [])]

    add_rows(engine, toy, DAY, 3)
    assert [(e.status, e.changes) for e in reconcile(engine, toy).days] == [("rescored", ["rows"])]
    assert sorted(_published(engine, toy, DAY)) == day_ids(engine, toy, DAY)


def test_dry_run_reports_and_changes_nothing(engine: sa.Engine, toy: Spec) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    add_rows(engine, toy, DAY, LATE_ROWS)

    report = reconcile(engine, toy, dry_run=True)

    assert report.dry_run and [(e.status, e.changes, e.run_id) for e in report.days] == [
        ("would_rescore", ["rows", "keys"], None)]
    assert set(_published(engine, toy, DAY).values()) == {"d1"} and len(_published(engine, toy, DAY)) == ROWS_PER_DAY
    assert _reconcile_runs(engine) == [] and _late_alerts(engine) == []


def test_the_window_is_the_last_published_days_through_a_bound(engine: sa.Engine, toy: Spec) -> None:
    days = [DAY - dt.timedelta(days=n) for n in (3, 2, 0)]  # DAY - 1 is never published
    for n, day in enumerate(days):
        score_day(engine, toy, day, run_id=f"d{n}")
        add_rows(engine, toy, day, 2)

    assert [e.day for e in reconcile(engine, toy, days=2, dry_run=True).days] == days[1:]
    assert [e.day for e in reconcile(engine, toy, days=2, through=DAY - dt.timedelta(days=1),
                                     dry_run=True).days] == days[:2]
    assert reconcile(engine, toy, days=0).days == []
    with pytest.raises(ValueError, match="days=-1: expected 0 or more"):
        reconcile(engine, toy, days=-1)


def test_a_failed_rescore_is_reported_and_the_other_days_proceed(engine: sa.Engine, toy: Spec) -> None:
    days = [DAY - dt.timedelta(days=n) for n in (3, 2, 1, 0)]
    for n, day in enumerate(days):
        score_day(engine, toy, day, run_id=f"d{n}")
    ids = day_ids(engine, toy, DAY)
    with engine.begin() as conn:  # DAY keeps 10 of its 80 rows: below half its history's volume
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE id = ANY(:ids)"), {"ids": ids[10:]})
    add_rows(engine, toy, days[2], LATE_ROWS)

    report = reconcile(engine, toy)

    by_day = {e.day: e for e in report.days}
    assert by_day[days[2]].status == "rescored"
    failed = by_day[DAY]
    assert (failed.status, failed.source_rows, failed.run_id is not None) == ("failed", 10, True)
    assert "min_volume_ratio" in failed.error and "\n" not in failed.error
    assert [e.day for e in report.failed] == [DAY]
    assert sorted(_published(engine, toy, DAY)) == ids, "the day keeps what was published"
    assert len(_published(engine, toy, days[2])) == ROWS_PER_DAY + LATE_ROWS
    assert sorted(a["partition_date"] for a in _late_alerts(engine)) == [days[2], DAY]
    with pytest.raises(ReconcileFailed, match=rf"1 of 4 day\(s\) of model 'toy' failed to re-score: {DAY}"):
        report.raise_if_failed()


def test_a_day_with_a_running_run_is_skipped(engine: sa.Engine, toy: Spec) -> None:
    score_day(engine, toy, DAY, run_id="d1")
    add_rows(engine, toy, DAY, LATE_ROWS)
    with engine.begin() as conn:  # a live run of another process (multi-process, recent: not dead)
        run_rows.start(conn, model="toy", run_id="busy", day=DAY, run_type="manual", dry_run=False, version=1,
                       sha256="0" * 64, shards=1, spec_sha256="0" * 64)

    [entry] = reconcile(engine, toy).days

    assert (entry.status, entry.changes) == ("skipped", ["rows", "keys"])
    assert "run busy is still running" in entry.error
    assert _reconcile_runs(engine) == [] and _late_alerts(engine) == []


def test_a_day_published_partial_takes_its_late_rows_while_still_short(engine: sa.Engine, toy: Spec) -> None:
    for day in (DAY - dt.timedelta(days=14), DAY - dt.timedelta(days=7)):  # its weekday's usual volume: 80
        score_day(engine, toy, day, run_id=f"history-{day}")
    start = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    with engine.begin() as conn:  # the day is at 25% when it is published (the operator allowed it)
        conn.execute(sa.text(f"DELETE FROM {toy.source.table} WHERE id IN (SELECT id FROM {toy.source.table} "
                             "WHERE event_time >= :s AND event_time < :e ORDER BY id OFFSET 20)"),
                     {"s": start, "e": start + dt.timedelta(days=1)})
    score_day(engine, toy, DAY, run_id="partial", allow_partial=True)
    add_rows(engine, toy, DAY, 10)  # 30 of 80: still short of the volume rule

    [entry] = reconcile(engine, toy, days=1).days

    assert (entry.status, entry.partial, entry.source_rows) == ("rescored", True, 30)
    [new_run] = _reconcile_runs(engine)
    assert (new_run["partial"], new_run["rows_extracted"]) == (True, 30)
    assert len(_published(engine, toy, DAY)) == 30

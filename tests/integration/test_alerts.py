"""Alerts through the real notifier (a webhook receiver on 127.0.0.1) and a real PostgreSQL.

JSON-safe details (`ml_batch.jsonvalues`): a NaN, an infinity or a numpy value in an alert's details reaches a
webhook as strict JSON and is recorded in the alerts table, never lost. Condition alerts: one open alert per
model, kind and subject, updated by repeated days without sending, resolved once, safe under a race.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import sqlalchemy as sa

from ml_batch.db.tables import alerts as alert_rows
from ml_batch.ops import alerts
from ml_batch.ops.alerts import Alert, WebhookChannel
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration


@pytest.fixture()
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    monkeypatch.delenv(alerts.WEBHOOK_URL_ENV, raising=False)
    with WebhookReceiver() as found:
        alerts.register_channel(WebhookChannel(found.url, name="test"))
        try:
            yield found
        finally:
            alerts.unregister_channel("test")


def test_an_alert_with_nan_and_numpy_details_is_delivered_as_strict_json_and_recorded(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    details = {"value": float("nan"), "bound": float("inf"), "rows": np.int64(7), "drifted": np.bool_(True),
               "share": np.float64(0.25)}
    alert = Alert(kind="performance_floor", severity="critical", message="realized mae is above the ceiling",
                  model_name="toy", details=details)
    stored = alerts.record(engine, alert)
    assert receiver.invalid == [], "the webhook got a body that is not JSON (a bare NaN or Infinity)"
    [body] = receiver.received
    assert body["details"] == {"value": None, "bound": None, "rows": 7, "drifted": True, "share": 0.25}
    assert stored is not None, "the alert was not recorded in the alerts table"
    with engine.connect() as conn:
        row = conn.execute(sa.select(alert_rows.c.details).where(alert_rows.c.id == stored)).scalar_one()
    assert row == body["details"]


# -- one open alert per model, kind and subject ----------------------------------------------------------------
DAY = dt.date(2026, 3, 1)


def _drift(day: dt.date, severity: str = "warning", model: str = "toy") -> Alert:
    return Alert(kind="dataset_drift", severity=severity, model_name=model, partition_date=day, run_id=f"r-{day}",
                 message=f"sustained dataset drift on {day}", details={"day": day})


def _rows(engine: sa.Engine, kind: str = "dataset_drift") -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(
            sa.select(alert_rows).where(alert_rows.c.kind == kind).order_by(alert_rows.c.id)).mappings()]


def test_a_condition_seen_on_three_days_is_delivered_once_and_resolved_once_then_opens_anew(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    ids = {alerts.record(engine, _drift(day)) for day in days}
    assert len(receiver.received) == 1, [b["text"] for b in receiver.received]
    [row] = _rows(engine)
    assert ids == {row["id"]}
    assert (row["state"], row["occurrences"], row["first_day"], row["partition_date"]) == ("open", 3, DAY, days[-1])
    assert row["message"] == f"sustained dataset drift on {days[-1]}" and row["run_id"] == f"r-{days[-1]}"
    assert row["details"] == {"day": days[-1].isoformat()}
    assert [a["id"] for a in alerts.open_alerts(engine, "toy")] == [row["id"]]

    clear = DAY + dt.timedelta(days=3)
    assert alerts.resolve(engine, model="toy", kind="dataset_drift", day=clear,
                          message=f"no dataset drift on {clear}") == row["id"]
    assert len(receiver.received) == 2
    notice = receiver.received[-1]
    assert notice["state"] == "resolved" and notice["partition_date"] == clear.isoformat()
    assert notice["text"] == (f"[ml-batch] RESOLVED dataset_drift toy: no dataset drift on {clear} (open since "
                              f"{DAY}, 3 days) | what to do: README.md#alert-dataset_drift")
    [row] = _rows(engine)
    assert (row["state"], row["resolved_day"]) == ("resolved", clear) and row["resolved_at"] is not None
    assert alerts.open_alerts(engine, "toy") == []
    # Resolving again finds nothing open and sends nothing.
    assert alerts.resolve(engine, model="toy", kind="dataset_drift", day=clear) is None
    assert len(receiver.received) == 2

    back = clear + dt.timedelta(days=1)
    again = alerts.record(engine, _drift(back))
    assert len(receiver.received) == 3 and receiver.received[-1]["state"] == "open"
    assert [(r["id"] == again, r["state"]) for r in _rows(engine)] == [(False, "resolved"), (True, "open")]


def test_a_rise_in_severity_is_delivered_again_and_a_fall_is_not(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    alerts.record(engine, _drift(DAY))
    alerts.record(engine, _drift(DAY + dt.timedelta(days=1), severity="critical"))
    alerts.record(engine, _drift(DAY + dt.timedelta(days=2), severity="warning"))
    assert [b["severity"] for b in receiver.received] == ["warning", "critical"]
    [row] = _rows(engine)
    assert (row["severity"], row["occurrences"]) == ("warning", 3)


def test_a_repeated_check_of_the_latest_day_is_not_counted_again(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    for _ in range(3):
        alerts.record(engine, _drift(DAY))
    [row] = _rows(engine)
    assert row["occurrences"] == 1 and len(receiver.received) == 1


def test_a_backfill_of_an_earlier_day_updates_the_open_alert_but_never_resolves_it(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    latest = DAY + dt.timedelta(days=5)
    alerts.record(engine, _drift(latest))
    earlier = DAY + dt.timedelta(days=1)
    alerts.record(engine, _drift(earlier))
    [row] = _rows(engine)
    # The earlier day counts and moves the first day back; the latest day's message stays.
    assert (row["first_day"], row["partition_date"], row["occurrences"]) == (earlier, latest, 2)
    assert row["message"] == f"sustained dataset drift on {latest}"
    # A clean earlier day says nothing about the latest one: the alert stays open, nothing is sent.
    assert alerts.resolve(engine, model="toy", kind="dataset_drift", day=DAY) is None
    assert _rows(engine)[0]["state"] == "open" and len(receiver.received) == 1
    assert alerts.resolve(engine, model="toy", kind="dataset_drift", day=latest) == row["id"]


def test_subjects_and_models_are_separate_alerts_and_events_are_sent_every_time(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    for feature in ("temp", "humidity", "temp"):
        alerts.record(engine, Alert(kind="out_of_support", severity="warning", model_name="toy", subject=feature,
                                    partition_date=DAY, message=f"{feature}: 97% of rows above the maximum"))
    alerts.record(engine, _drift(DAY, model="other"))
    alerts.record(engine, _drift(DAY, model="toy"))
    for _ in range(2):
        alerts.record(engine, Alert(kind="rollback", severity="warning", model_name="toy", message="rolled back"))
    assert [(b["kind"], b["subject"]) for b in receiver.received] == [
        ("out_of_support", "temp"), ("out_of_support", "humidity"), ("dataset_drift", None),
        ("dataset_drift", None), ("rollback", None), ("rollback", None)]
    assert [r["state"] for r in _rows(engine, "rollback")] == ["event", "event"]
    assert sorted(a["subject"] for a in alerts.open_alerts(engine, "toy") if a["kind"] == "out_of_support") == [
        "humidity", "temp"]
    assert alerts.resolve(engine, model="toy", kind="out_of_support", subject="temp", day=DAY) is not None
    assert [a["subject"] for a in alerts.open_alerts(engine, "toy") if a["kind"] == "out_of_support"] == ["humidity"]


def test_a_record_that_loses_the_race_to_open_updates_the_winner(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    # The winner's insert is held uncommitted while the loser records: the loser's insert waits on the unique
    # index, finds the conflict once the winner commits, and updates the winner's row instead.
    results: list[int | None] = []
    loser = threading.Thread(target=lambda: results.append(alerts.record(engine, _drift(DAY + dt.timedelta(1)))))
    with engine.connect() as winner:
        transaction = winner.begin()
        try:
            winner.execute(alert_rows.insert().values(
                model_name="toy", kind="dataset_drift", severity="warning", partition_date=DAY, first_day=DAY,
                message="winner", state="open"))
            loser.start()
            _wait_for_a_lock_wait(engine)
        finally:
            transaction.commit()
    loser.join(10)
    [row] = _rows(engine)
    assert results == [row["id"]] and (row["state"], row["occurrences"]) == ("open", 2)
    assert receiver.received == []  # the winner was the one to deliver


def test_records_racing_for_one_identity_open_one_alert_and_deliver_once(
        engine: sa.Engine, receiver: WebhookReceiver) -> None:
    start = threading.Barrier(4)

    def race(i: int) -> None:
        start.wait()
        alerts.record(engine, _drift(DAY + dt.timedelta(days=i)))

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    [row] = _rows(engine)
    assert row["occurrences"] == 4 and len(receiver.received) == 1


def test_a_condition_is_delivered_when_the_database_is_down(receiver: WebhookReceiver) -> None:
    down = sa.create_engine("postgresql+psycopg2://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    assert alerts.record(down, _drift(DAY)) is None
    assert [b["kind"] for b in receiver.received] == ["dataset_drift"]  # a duplicate beats silence
    assert alerts.resolve(down, model="toy", kind="dataset_drift", day=DAY) is None
    assert len(receiver.received) == 1  # nothing is known to be open: no "resolved" is sent


def _wait_for_a_lock_wait(engine: sa.Engine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar_one()
            if waiting:
                return
            conn.rollback()  # pg_stat_activity is a snapshot per transaction: look again in a new one
            time.sleep(0.05)
    raise AssertionError("the racing record never waited on the unique index")

"""Publish-by deadlines (`ml_batch.monitoring.late`) against a real PostgreSQL and a webhook on 127.0.0.1: a day not
published by `publish_by` raises one `late` alert however often it is checked, a day published in time none,
and a day published late resolves it with one notice."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.monitoring import late
from ml_batch.ops import alerts
from ml_batch.run.day import score_day
from tests.support.toy import DAY, trained_toy
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

# The toy schedule's run of DAY fires on DAY+1 at 06:00; with publish_by 08:00 it is due on DAY+1 at 08:00.
DEADLINE = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(8), tzinfo=dt.UTC)


def _late_rows(engine: sa.Engine) -> list[tuple[str, dt.date]]:
    return [(a["state"], a["partition_date"]) for a in alerts.recent(engine, "toy") if a["kind"] == "late"]


def test_a_day_not_published_by_publish_by_raises_one_late_alert_until_it_is_published(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    alert_webhook.received.clear()  # the gate's alert
    first = late.check_late(engine, spec, DEADLINE)
    second = late.check_late(engine, spec, DEADLINE + dt.timedelta(hours=1))
    assert first.state == second.state == "late" and first.alert_id == second.alert_id is not None
    sent = alert_webhook.received
    assert [(m["kind"], m["state"], m["partition_date"]) for m in sent] == [("late", "open", str(DAY))]
    assert f"{DAY} is not published: it was due by {DEADLINE:%Y-%m-%d %H:%M} UTC" in sent[0]["message"]
    assert alert_webhook.received[0]["runbook"].endswith("#alert-late")

    score_day(engine, spec, DAY, run_id="late-publish")  # published after its deadline
    resolved = late.check_late(engine, spec, DEADLINE + dt.timedelta(hours=2))
    assert resolved.state == "published" and resolved.alert_id == first.alert_id
    assert [m["state"] for m in alert_webhook.received] == ["open", "resolved"]
    assert _late_rows(engine)[0] == ("resolved", DAY)
    assert late.check_late(engine, spec, DEADLINE + dt.timedelta(hours=3)).alert_id is None
    assert len(alert_webhook.received) == 2, "a published day sends nothing more"


def test_a_day_published_in_time_raises_nothing_and_publishing_resolves_at_once(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    score_day(engine, spec, DAY, run_id="on-time")
    alert_webhook.received.clear()  # the gate's alert
    assert late.check_late(engine, spec, DEADLINE).state == "published"
    assert alert_webhook.received == [] and _late_rows(engine) == []

    # The next day is late; publishing it (what the daily DAG's publish task calls) resolves the alert at once.
    nxt = DAY + dt.timedelta(days=1)
    assert late.check_late(engine, spec, DEADLINE + dt.timedelta(days=1)).state == "late"
    score_day(engine, spec, nxt, run_id="next")
    assert late.day_published(engine, "toy", DAY) is None, "an earlier day says nothing about the late one"
    assert late.day_published(engine, "toy", nxt) is not None
    assert _late_rows(engine) == [("resolved", nxt)]
    assert [m["state"] for m in alert_webhook.received] == ["open", "resolved"]


def test_a_day_never_scored_stays_late_when_a_later_day_is_published(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    # The scheduler was down for two days; catchup is off, so when it came back it scored only the latest day.
    # The two days between were once left behind in silence: the later day resolved the alert.
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    first, second, latest = (DAY + dt.timedelta(days=n) for n in (1, 2, 3))
    score_day(engine, spec, DAY, run_id="before")
    score_day(engine, spec, latest, run_id="after")
    alert_webhook.received.clear()  # the gate's alert
    now = DEADLINE + dt.timedelta(days=3, hours=1)  # the latest day's deadline has passed, and it is published

    found = late.check_late(engine, spec, now)
    assert (found.state, found.due.day if found.due else None, found.missing) == ("late", latest, (first, second))
    assert [(m["kind"], m["state"]) for m in alert_webhook.received] == [("late", "open")]
    message = alert_webhook.received[0]["message"]
    assert f"2 due days are not published: {first}, {second}" in message
    assert f"{first} was due by {DEADLINE + dt.timedelta(days=1):%Y-%m-%d %H:%M} UTC" in message
    assert alert_webhook.received[0]["details"]["days"] == [str(first), str(second)]

    # A backfill of one of them (what the daily DAG's publish task calls): still late for the other, not sent again.
    score_day(engine, spec, first, run_id="backfill-1")
    still = late.after_publish(engine, spec, first, now)
    assert (still.state, still.missing) == ("late", (second,)) and still.alert_id == found.alert_id
    assert _late_rows(engine) == [("open", latest)] and len(alert_webhook.received) == 1
    assert f"1 due day is not published: {second}" in alerts.recent(engine, "toy")[0]["message"]

    score_day(engine, spec, second, run_id="backfill-2")
    done = late.after_publish(engine, spec, second, now)
    assert (done.state, done.missing, done.alert_id) == ("published", (), found.alert_id)
    assert [m["state"] for m in alert_webhook.received] == ["open", "resolved"]
    assert _late_rows(engine) == [("resolved", latest)]


def test_days_before_the_models_first_published_day_are_never_late(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    # start_date is weeks before the model's first published day: those days are not "missing", nothing scored
    # them by design (and a pruned day is before the first day kept).
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    score_day(engine, spec, DAY, run_id="first")
    found = late.check_late(engine, spec, DEADLINE + dt.timedelta(hours=1))
    assert (found.state, found.missing) == ("published", ())


def test_unpublished_days_are_looked_for_at_most_lookback_days_back(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-01-01")
    score_day(engine, spec, DAY, run_id="long-ago")
    with engine.begin() as conn:  # that run's day moved 80 days back: the model's first published day
        conn.execute(sa.text(f'UPDATE "{settings.schema}".published_days SET partition_date = :d'),
                     {"d": DAY - dt.timedelta(days=80)})
    found = late.check_late(engine, spec, DEADLINE)
    oldest = DAY - dt.timedelta(days=late.LOOKBACK_DAYS)
    assert (found.state, len(found.missing), found.missing[0], found.missing[-1]) == (
        "late", late.LOOKBACK_DAYS + 1, oldest, DAY)
    message = alerts.recent(engine, "toy")[0]["message"]
    assert message.startswith(f"{late.LOOKBACK_DAYS + 1} due days are not published: {oldest}, ")
    assert " ...; " in message and len(alerts.recent(engine, "toy")[0]["details"]["days"]) == late.LOOKBACK_DAYS + 1


def test_days_never_to_be_scored_are_skipped_by_moving_start_date_past_them(
        settings: Settings, engine: sa.Engine, alert_webhook: WebhookReceiver) -> None:
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    latest = DAY + dt.timedelta(days=3)
    score_day(engine, spec, DAY, run_id="before")
    score_day(engine, spec, latest, run_id="after")
    now = DEADLINE + dt.timedelta(days=3, hours=1)
    assert late.check_late(engine, spec, now).missing == (DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2))
    moved = spec.model_copy(update={"start_date": latest})  # the source had nothing to score on those days
    resolved = late.check_late(engine, moved, now + dt.timedelta(hours=1))
    assert (resolved.state, resolved.missing) == ("published", ())
    assert [m["state"] for m in alert_webhook.received if m["kind"] == "late"] == ["open", "resolved"]


def test_a_publish_during_the_hourly_check_never_leaves_the_published_day_late(
        settings: Settings, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hourly check reads DAY as missing; DAY is published and its re-check runs before the hourly check
    records what it read. Before, the re-check found no alert to resolve, then the hourly check opened one for a
    published day (open until the next hour). Now the two checks of a model run one after the other."""
    spec = trained_toy(engine, settings.schema, publish_by="08:00", start_date="2026-05-01")
    real = late.unpublished_days
    racing: list[threading.Thread] = []

    def then_published(conn: sa.Connection, spec_: object, through: dt.date) -> list[dt.date]:
        found = real(conn, spec, through)
        if not racing:  # the hourly check's read: DAY is missing; now the day is published and re-checked
            score_day(engine, spec, DAY, run_id="racing-publish")
            racing.append(threading.Thread(target=late.after_publish, args=(engine, spec, DAY, DEADLINE)))
            racing[0].start()
            racing[0].join(3)  # it waits for the hourly check (before: it ran through, with nothing to resolve)
        return found

    monkeypatch.setattr(late, "unpublished_days", then_published)
    assert late.check_late(engine, spec, DEADLINE).state == "late"  # what it read
    racing[0].join(30)
    assert not racing[0].is_alive()
    assert [row for row in _late_rows(engine) if row[0] == "open"] == [], _late_rows(engine)

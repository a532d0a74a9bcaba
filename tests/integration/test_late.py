"""Publish-by deadlines (`ml_batch.monitoring.late`) against a real PostgreSQL and a webhook on 127.0.0.1: a day not
published by `publish_by` raises one `late` alert however often it is checked, a day published in time none,
and a day published late resolves it with one notice."""

from __future__ import annotations

import datetime as dt

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

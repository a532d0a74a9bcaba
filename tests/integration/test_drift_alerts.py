"""The daily drift check's alerts through the real notifier (a webhook receiver on 127.0.0.1) and PostgreSQL:
an out-of-support feature opens one alert however many days it lasts and resolves once when it clears, the
day's estimate says it cannot be trusted meanwhile, and a check with `raise_alerts=False` (the CLI) sends
nothing while storing the summary `stored_day_drift` reads back."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.monitoring.daily import check_day_drift, stored_day_drift
from ml_batch.ops import alerts
from ml_batch.promotion.retrain import train_and_register
from ml_batch.run.day import score_day
from ml_batch.spec import Spec
from tests.integration.helpers import load_toy_data, shift_toy_day, toy_spec
from tests.support.toy import AS_OF, FIRST
from tests.support.webhook import WebhookReceiver

pytestmark = pytest.mark.integration

DELAY = 3


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    spec = toy_spec(settings.schema, delay_days=DELAY)
    load_toy_data(engine, settings.schema, FIRST, days=40, rows_per_day=300, delay_days=DELAY)
    assert train_and_register(engine, spec, AS_OF, actor="t", promote=True).promoted
    return spec




def _sent(alert_webhook: WebhookReceiver, kind: str) -> list[dict]:
    return [body for body in alert_webhook.received if body["kind"] == kind]


def test_an_out_of_support_feature_alerts_once_and_resolves_once(
    engine: sa.Engine, toy: Spec, alert_webhook: WebhookReceiver
) -> None:
    days = [AS_OF + dt.timedelta(days=offset) for offset in range(3)]
    for day in days[:2]:
        shift_toy_day(engine, toy, day, 100.0)
    for index, day in enumerate(days):
        score_day(engine, toy, day, run_id=f"day-{index}")
        summary = check_day_drift(engine, toy, day, run_id=f"day-{index}")
        assert summary.status == "checked"
        if index < 2:
            [entry] = summary.out_of_support
            assert entry.feature == "x1" and entry.share == 1.0 and entry.direction == "above"
            assert summary.estimate_reliable is False
            assert any("out of support" in reason and "x1" in reason for reason in summary.estimate_reasons)
        else:
            assert summary.out_of_support == () and summary.estimate_reliable is True

    [opened] = _sent(alert_webhook, "out_of_support")[:1]
    assert opened["subject"] == "x1" and opened["partition_date"] == str(days[0])
    assert "x1: 100% of rows above the training maximum" in opened["message"]
    assert opened["runbook"].endswith("#alert-out_of_support")
    # Two days out of support, one day back: one alert sent, one resolved notice, nothing else.
    assert [body.get("state") for body in _sent(alert_webhook, "out_of_support")] == ["open", "resolved"]
    [stored] = [a for a in alerts.recent(engine, "toy") if a["kind"] == "out_of_support"]
    assert stored["state"] == "resolved" and stored["occurrences"] == 2 and stored["resolved_day"] == days[2]


def test_a_check_without_alerts_sends_nothing_and_stores_the_summary(
    engine: sa.Engine, toy: Spec, alert_webhook: WebhookReceiver
) -> None:
    day = AS_OF + dt.timedelta(days=1)
    shift_toy_day(engine, toy, day, 100.0)
    score_day(engine, toy, day, run_id="quiet")
    assert stored_day_drift(engine, "toy", day) is None
    summary = check_day_drift(engine, toy, day, run_id="quiet", raise_alerts=False)
    assert summary.out_of_support and summary.estimate_reliable is False
    assert alert_webhook.received == []
    assert [a["kind"] for a in alerts.recent(engine, "toy")] == ["gate_promote"]  # training's, nothing since
    assert stored_day_drift(engine, "toy", day) == summary

"""Alerts hold JSON-safe details (`ml_batch.jsonvalues`): a NaN, an infinity or a numpy value in an alert's
details reaches a webhook as strict JSON and is recorded in the alerts table, never lost."""

from __future__ import annotations

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

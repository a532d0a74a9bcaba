"""Alerts: delivered first (webhook, email: the *channels*), then recorded in the `alerts` table best-effort.

An alert must reach someone when the database it would report on is down, so the order is fixed:

1. **deliver** to every channel (`register_channel`; a webhook named by ML_BATCH_ALERT_WEBHOOK_URL is always
   one). A channel that fails is logged with the URL's host only (a webhook URL is a secret) and never
   fails the run, nor stops the other channels;
2. **store** the alert in the `alerts` table. A database failure is logged, never raised.

Channels: `WebhookChannel` (Slack-compatible JSON, `{"text": ...}` plus the alert's fields) here; Airflow's
side (`ml_batch.airflow.notifiers.register_channels`) adds the webhook of the Airflow connection
`ml_batch_alerts_webhook` and email through Airflow's SMTP provider.

Kinds: run_failure, dataset_drift, performance_floor, performance_estimate, gate_reject, gate_promote,
rollback, late_rows (a reconcile re-scored a day), incomplete_day (a day was refused as incomplete) (`KINDS`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from ml_batch.db.tables import ALERT_KINDS, ALERT_SEVERITIES, alerts
from ml_batch.errors import ConfigError, DatabaseError, first_line
from ml_batch.jsonvalues import json_safe

logger = logging.getLogger(__name__)

KINDS = ALERT_KINDS
SEVERITIES = ALERT_SEVERITIES
WEBHOOK_URL_ENV = "ML_BATCH_ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Alert:
    kind: str
    severity: str
    message: str
    model_name: str | None = None
    partition_date: dt.date | None = None
    dag_id: str | None = None
    run_id: str | None = None
    details: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r}: expected one of {KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r}: expected one of {SEVERITIES}")

    def as_payload(self) -> dict[str, Any]:
        """The JSON a webhook receives: Slack's `text`, then every field of the alert (JSON-safe)."""
        return {
            "text": f"[ml-batch] {self.severity.upper()} {self.kind} {self.model_name or '-'}: {self.message}",
            "kind": self.kind, "severity": self.severity, "model_name": self.model_name,
            "partition_date": self.partition_date.isoformat() if self.partition_date else None,
            "dag_id": self.dag_id, "run_id": self.run_id, "message": self.message,
            "details": json_safe(self.details or {}),
        }


class Channel(Protocol):
    """Somewhere an alert is delivered. `name` identifies it (registering a name again replaces it)."""

    name: str

    def send(self, alert: Alert) -> None: ...

    def describe(self) -> str:
        """What to name in a log line: never a secret."""
        ...


class DeliveryError(Exception):
    """A channel could not deliver an alert (logged by `deliver`, never raised out of it)."""


class WebhookChannel:
    """POSTs the alert as Slack-compatible JSON to `url` (any 2xx answer is a delivery)."""

    def __init__(self, url: str, *, name: str = "webhook", timeout_s: float = WEBHOOK_TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # the URL itself is not echoed: its path is the secret of a Slack webhook
            raise ValueError(f"alert webhook URL of channel {name!r} (scheme {parts.scheme!r}, host "
                             f"{parts.hostname!r}): expected http(s)://host/...")
        self.name = name
        self._url = url
        self._timeout_s = timeout_s

    def describe(self) -> str:
        return f"webhook to {urllib.parse.urlsplit(self._url).hostname}"

    def send(self, alert: Alert) -> None:
        body = json.dumps(alert.as_payload(), allow_nan=False).encode()  # strict JSON: no bare NaN
        request = urllib.request.Request(self._url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self._timeout_s) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            raise DeliveryError(f"HTTP {exc.code}") from None  # from None: the error's repr holds the URL
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryError(f"{type(reason).__name__}: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"HTTP {status}")


_channels: dict[str, Channel] = {}


def register_channel(channel: Channel) -> None:
    """Deliver every alert of this process to `channel` too (idempotent per `channel.name`)."""
    _channels[channel.name] = channel


def unregister_channel(name: str) -> None:
    _channels.pop(name, None)


def channels() -> list[Channel]:
    """The registered channels, plus the webhook of ML_BATCH_ALERT_WEBHOOK_URL when it is set."""
    found = list(_channels.values())
    url = os.environ.get(WEBHOOK_URL_ENV, "").strip()
    if url:
        try:
            found.append(WebhookChannel(url, name="webhook_env"))
        except ValueError as exc:
            logger.error("%s is not usable: %s", WEBHOOK_URL_ENV, exc)
    return found


def deliver(alert: Alert) -> list[str]:
    """Send `alert` to every channel; the descriptions of those that took it. Failures are logged only."""
    delivered = []
    for channel in channels():
        try:
            channel.send(alert)
        except DeliveryError as exc:
            logger.error("alert %s for %s not delivered by %s: %s", alert.kind, alert.model_name or "-",
                         channel.describe(), exc)
            continue
        delivered.append(channel.describe())
    return delivered


def store(engine: sa.Engine | Callable[[], sa.Engine], alert: Alert) -> int | None:
    """Insert `alert` into the `alerts` table; its id, or None when the database failed (logged).

    `engine` may be a function returning one, so that a failure to build or migrate it is caught too.
    """
    try:
        resolved = engine if isinstance(engine, sa.Engine) else engine()
        with resolved.begin() as conn:
            return int(conn.execute(
                alerts.insert().values(
                    model_name=alert.model_name, kind=alert.kind, severity=alert.severity,
                    partition_date=alert.partition_date, dag_id=alert.dag_id, run_id=alert.run_id,
                    message=alert.message, details=json_safe(alert.details or {}),
                ).returning(alerts.c.id)
            ).scalar_one())
    except (sa.exc.SQLAlchemyError, DatabaseError, ConfigError, OSError) as exc:
        logger.error("alert %s for %s was delivered but not recorded in the alerts table: %s", alert.kind,
                     alert.model_name or "-", first_line(exc))
        return None


def record(engine: sa.Engine | Callable[[], sa.Engine], alert: Alert) -> int | None:
    """Log and deliver `alert`, then store it (best-effort); its id in `alerts`, None when not stored."""
    level = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}[alert.severity]
    logger.log(level, "ALERT %s [%s] %s: %s", alert.kind, alert.severity, alert.model_name or "-", alert.message)
    deliver(alert)
    return store(engine, alert)


def recent(engine: sa.Engine, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alerts, newest first."""
    stmt = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if model is not None:
        stmt = stmt.where(alerts.c.model_name == model)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings().all()]

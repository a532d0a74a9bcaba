"""Alerts: what happened to a model, delivered to the channels (webhook, email) and kept in the `alerts` table.

**Conditions and events.** A *condition* (`CONDITION_KINDS`: dataset_drift, out_of_support, performance_floor,
performance_estimate, incomplete_day, late) holds for a while: there is at most **one open alert per model, kind
and subject** (`Alert.subject`: the feature of `out_of_support`, the metric of the performance kinds, the day of
`incomplete_day`, None for kinds about the model as a whole). `record` opens it and delivers it once; a later day
with the same condition updates the open row (the latest day, message and details, `occurrences`, `updated_at`)
and sends nothing, unless the severity rose (warning to critical), which is delivered again. `resolve` closes it
when the condition clears and delivers one "resolved" notice. A condition that comes back opens a new alert. An
*event* (`EVENT_KINDS`: run_failure, gate_reject, gate_promote, rollback, late_rows, approval_requested,
unseen_class) is delivered and stored every time it happens.

**Days out of order** (a backfill). A condition found on a day before the open alert's latest day counts
(its `occurrences`, its `first_day` moves back) but the latest day's message stays; a check of the latest
day again (a retried task) is not counted twice. A clean day before the latest day never resolves: it says
nothing about the latest one. A clean check of the latest day itself, or of a later day, does.

**Delivery and the database.** An alert must reach someone when the database it would report on is down:

1. an *event* is delivered first to every channel, then stored best-effort (a failure is logged);
2. a *condition* is first claimed in the table (an INSERT guarded by the partial unique index
   `alerts_one_open`, so that two tasks raising it at once open one alert and deliver once: the loser
   updates the winner's row), then delivered. When the table cannot be read or written, it is delivered
   anyway and the failure logged: a duplicate is better than silence;
3. `resolve` needs the open row to know what cleared: with the database down it sends nothing (a notice
   about an alert nobody can see would be noise) and returns None; the next clean day resolves it.

A channel that fails, with any exception (an HTTP error, a refused connection, a URL that `http.client`
refuses, a bug), is logged with the URL's host and the error's type only (a webhook URL's path and query are
its secret) and never fails the run, nor stops the other channels.

**What to do.** Every alert names its day and cause, and links to its kind's section of the README's
"What to do about an alert" (`runbook`: `README.md#alert-<kind>`, or under the URL of a published README set
in ML_BATCH_ALERT_RUNBOOK_URL); the webhook payload carries it as `runbook` and Slack's `text` ends with it.

Channels: `WebhookChannel` (Slack-compatible JSON, `{"text": ...}` plus the alert's fields; a webhook named by
ML_BATCH_ALERT_WEBHOOK_URL is always one) here; Airflow's side (`ml_batch.airflow.notifiers.register_channels`)
adds the webhook of the Airflow connection `ml_batch_alerts_webhook` and email through Airflow's SMTP provider.
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
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ml_batch.db.tables import ALERT_KINDS, ALERT_SEVERITIES, ALERT_STATES, alerts
from ml_batch.errors import ConfigError, DatabaseError, first_line
from ml_batch.jsonvalues import json_safe

logger = logging.getLogger(__name__)

KINDS = ALERT_KINDS
SEVERITIES = ALERT_SEVERITIES
STATES = ALERT_STATES
CONDITION_KINDS = ("dataset_drift", "out_of_support", "performance_floor", "performance_estimate", "incomplete_day",
                   "late")
"""Kinds that hold for a while: one open alert per model, kind and subject, resolved when they clear."""
EVENT_KINDS = tuple(kind for kind in KINDS if kind not in CONDITION_KINDS)
"""Kinds delivered every time they happen."""
WEBHOOK_URL_ENV = "ML_BATCH_ALERT_WEBHOOK_URL"
WEBHOOK_TIMEOUT_S = 5.0
RUNBOOK_URL_ENV = "ML_BATCH_ALERT_RUNBOOK_URL"
RUNBOOK_DEFAULT = "README.md"
_RACE_ATTEMPTS = 3
_STORE_ERRORS = (sa.exc.SQLAlchemyError, DatabaseError, ConfigError, OSError)


def incomplete_day_subject(day: dt.date) -> str:
    """The subject of the `incomplete_day` alert about `day`: one open alert per refused day, resolved when that
    day is published whole (one home for the failure notifier that opens it and the publish that resolves it)."""
    return day.isoformat()


def runbook(kind: str) -> str:
    """Where the "what to do" of an alert kind is: `README.md#alert-<kind>`, or its anchor under the README
    URL set in ML_BATCH_ALERT_RUNBOOK_URL (e.g. the README of the deployed version on your Git server)."""
    if kind not in KINDS:
        raise ValueError(f"alert kind {kind!r}: expected one of {KINDS}")
    base = os.environ.get(RUNBOOK_URL_ENV, "").strip() or RUNBOOK_DEFAULT
    return f"{base.split('#', 1)[0]}#alert-{kind}"


@dataclass(frozen=True)
class Alert:
    """One alert (or, with `resolved`, the notice that a condition cleared).

    Attributes:
        kind: One of `KINDS`.
        severity: One of `SEVERITIES`.
        message: What happened, naming the day and the cause.
        model_name: The model; required for a condition kind (its identity).
        partition_date: The day the alert is about.
        dag_id: The DAG that raised it.
        run_id: The run that raised it.
        details: Anything else, stored as JSON (made JSON-safe).
        subject: What the alert is about within its kind (a feature, a metric); part of a condition's identity.
        resolved: True for the "resolved" notice `resolve` delivers (a condition kind only).
    """

    kind: str
    severity: str
    message: str
    model_name: str | None = None
    partition_date: dt.date | None = None
    dag_id: str | None = None
    run_id: str | None = None
    details: dict[str, Any] | None = None
    subject: str | None = None
    resolved: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r}: expected one of {KINDS}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert severity {self.severity!r}: expected one of {SEVERITIES}")
        if self.kind in CONDITION_KINDS and not self.model_name:
            raise ValueError(f"alert kind {self.kind!r} is a condition: it needs a model_name (one open alert "
                             "per model, kind and subject)")
        if self.resolved and self.kind not in CONDITION_KINDS:
            raise ValueError(f"alert kind {self.kind!r} is an event: it cannot be resolved (conditions: "
                             f"{CONDITION_KINDS})")

    @property
    def state(self) -> str:
        """"open" (a condition), "resolved" (the notice that it cleared) or "event"."""
        if self.resolved:
            return "resolved"
        return "open" if self.kind in CONDITION_KINDS else "event"

    def headline(self) -> str:
        """`[ml-batch] WARNING dataset_drift credit_default` (RESOLVED for a resolved notice): a mail's subject."""
        label = "RESOLVED" if self.resolved else self.severity.upper()
        return f"[ml-batch] {label} {self.kind} {self.model_name or '-'}"

    def as_payload(self) -> dict[str, Any]:
        """The JSON a webhook receives: Slack's `text` (ending with the runbook link), then every field."""
        link = runbook(self.kind)
        return {
            "text": f"{self.headline()}: {self.message} | what to do: {link}",
            "kind": self.kind, "severity": self.severity, "state": self.state, "subject": self.subject,
            "model_name": self.model_name,
            "partition_date": self.partition_date.isoformat() if self.partition_date else None,
            "dag_id": self.dag_id, "run_id": self.run_id, "message": self.message, "runbook": link,
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
        except ValueError as exc:  # http.client.InvalidURL (a space, a control character): its text is the URL
            raise DeliveryError(f"{type(exc).__name__} (the URL is not shown: it holds the secret)") from None
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
        except Exception as exc:  # noqa: BLE001 - any channel's failure is logged, never raised (module doc)
            # Only the type: an unexpected error's text (and traceback) may quote the URL and its token.
            logger.error("alert %s for %s not delivered by %s: %s (its message is not shown: it may hold the "
                         "channel's secret)", alert.kind, alert.model_name or "-", channel.describe(),
                         type(exc).__name__)
            continue
        delivered.append(channel.describe())
    return delivered


def store(engine: sa.Engine | Callable[[], sa.Engine], alert: Alert) -> int | None:
    """Insert `alert` as a new row (an event's, or a condition's when it could not be claimed); its id, or
    None when the database failed (logged).

    `engine` may be a function returning one, so that a failure to build or migrate it is caught too.
    """
    try:
        with _engine(engine).begin() as conn:
            return int(conn.execute(alerts.insert().values(**_row(alert)).returning(alerts.c.id)).scalar_one())
    except _STORE_ERRORS as exc:
        logger.error("alert %s for %s was delivered but not recorded in the alerts table: %s", alert.kind,
                     alert.model_name or "-", first_line(exc))
        return None


def record(engine: sa.Engine | Callable[[], sa.Engine], alert: Alert) -> int | None:
    """Log `alert` and raise it: an event is delivered then stored; a condition opens (and is delivered) or
    updates its open alert (delivered again only when its severity rose).

    Args:
        engine: The database, or a function returning it (its failure is caught too).
        alert: The alert (not a resolved notice: `resolve` sends those).

    Returns:
        Its id in `alerts` (the open alert's, for a repeated condition); None when it was not stored.
    """
    if alert.resolved:
        raise ValueError(f"record got a resolved {alert.kind} notice: close an alert with alerts.resolve")
    level = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}[alert.severity]
    logger.log(level, "ALERT %s [%s] %s: %s", alert.kind, alert.severity, alert.model_name or "-", alert.message)
    if alert.kind not in CONDITION_KINDS:
        deliver(alert)
        return store(engine, alert)
    try:
        alert_id, send = _open_or_update(_engine(engine), alert)
    except _STORE_ERRORS as exc:
        logger.error("alert %s for %s: the alerts table could not be read or written (%s); delivered without "
                     "de-duplication and not recorded", alert.kind, alert.model_name, first_line(exc))
        deliver(alert)
        return None
    if send:
        deliver(alert)
    else:
        logger.info("alert %s for %s is open already (id %d): updated, not sent again", alert.kind,
                    alert.model_name, alert_id)
    return alert_id


def resolve(engine: sa.Engine | Callable[[], sa.Engine], *, model: str, kind: str, day: dt.date,
            subject: str | None = None, run_id: str | None = None, dag_id: str | None = None,
            message: str | None = None) -> int | None:
    """Close the open alert of (model, kind, subject) because `day` was checked clean, and deliver one notice.

    The notice's text reads "[ml-batch] RESOLVED dataset_drift credit_default: <message> (open since
    2026-03-01, 7 days)"; its payload has `state: "resolved"`.

    Args:
        engine: The database, or a function returning it.
        model: The model.
        kind: A condition kind (`CONDITION_KINDS`).
        day: The day whose check found the condition gone.
        subject: The alert's subject (a feature, a metric), None for kinds without one.
        run_id: The run that found it gone.
        dag_id: The DAG of that run.
        message: What cleared (default "<kind> cleared on <day>").

    Returns:
        The resolved alert's id; None (nothing sent) when none was open, when `day` is before the open
        alert's latest day (a backfill says nothing about the latest day), or when the database failed.
    """
    if kind not in CONDITION_KINDS:
        raise ValueError(f"alert kind {kind!r} cannot be resolved: expected one of {CONDITION_KINDS}")
    try:
        with _engine(engine).begin() as conn:
            row = conn.execute(sa.select(alerts).where(*_identity(model, kind, subject)).with_for_update()
                               ).mappings().first()
            if row is None:
                return None
            if row["partition_date"] is not None and day < row["partition_date"]:
                logger.info("alert %s for %s stays open: %s is before its latest day %s", kind, model, day,
                            row["partition_date"])
                return None
            conn.execute(alerts.update().where(alerts.c.id == row["id"]).values(
                state="resolved", resolved_at=sa.func.now(), resolved_day=day, updated_at=sa.func.now()))
    except _STORE_ERRORS as exc:
        logger.error("alert %s for %s: could not read or close an open alert (%s); nothing sent", kind, model,
                     first_line(exc))
        return None
    first = row["first_day"] or row["partition_date"]
    span = (f" (open since {first}, {row['occurrences']} day{'s' if row['occurrences'] != 1 else ''})"
            if first else "")
    subject_text = f" of {subject}" if subject else ""
    notice = Alert(
        kind=kind, severity="info", model_name=model, partition_date=day, subject=subject, resolved=True,
        run_id=run_id, dag_id=dag_id,
        message=(message or f"{kind}{subject_text} cleared on {day}") + span,
        details={"alert_id": row["id"], "first_day": first, "last_day": row["partition_date"],
                 "occurrences": row["occurrences"], "severity": row["severity"], "message": row["message"]},
    )
    logger.info("RESOLVED %s %s: %s", kind, model, notice.message)
    deliver(notice)
    return int(row["id"])


def open_alerts(engine: sa.Engine, model: str | None = None) -> list[dict[str, Any]]:
    """The open alerts (of `model`, or all), most recently updated first, each with its `runbook` link."""
    stmt = sa.select(alerts).where(alerts.c.state == "open").order_by(alerts.c.updated_at.desc(), alerts.c.id.desc())
    if model is not None:
        stmt = stmt.where(alerts.c.model_name == model)
    with engine.connect() as conn:
        return [{**row, "runbook": runbook(row["kind"])} for row in conn.execute(stmt).mappings().all()]


def recent(engine: sa.Engine, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The most recently raised or updated alerts, newest first, each with its `runbook` link."""
    stmt = sa.select(alerts).order_by(alerts.c.updated_at.desc(), alerts.c.id.desc()).limit(limit)
    if model is not None:
        stmt = stmt.where(alerts.c.model_name == model)
    with engine.connect() as conn:
        return [{**row, "runbook": runbook(row["kind"])} for row in conn.execute(stmt).mappings().all()]


def _engine(engine: sa.Engine | Callable[[], sa.Engine]) -> sa.Engine:
    return engine if isinstance(engine, sa.Engine) else engine()


def _row(alert: Alert) -> dict[str, Any]:
    """The `alerts` row of a newly raised alert."""
    return {"model_name": alert.model_name, "kind": alert.kind, "severity": alert.severity,
            "partition_date": alert.partition_date, "first_day": alert.partition_date, "dag_id": alert.dag_id,
            "run_id": alert.run_id, "message": alert.message, "details": json_safe(alert.details or {}),
            "subject": alert.subject, "state": alert.state}


def _identity(model: str | None, kind: str, subject: str | None) -> tuple[sa.ColumnElement[bool], ...]:
    """The open alert of (model, kind, subject): the rows `alerts_one_open` allows one of."""
    return (alerts.c.state == "open", alerts.c.model_name == model, alerts.c.kind == kind,
            sa.func.coalesce(alerts.c.subject, "") == (subject or ""))


def _open_or_update(engine: sa.Engine, alert: Alert) -> tuple[int, bool]:
    """Open `alert` or update its open alert; its id and whether to deliver it.

    The INSERT does nothing on a conflict with `alerts_one_open` (another task opened it between our look and
    our insert, and PostgreSQL made us wait for its commit): the next attempt finds that row and updates it.
    """
    for _ in range(_RACE_ATTEMPTS):
        with engine.begin() as conn:
            row = conn.execute(sa.select(alerts).where(*_identity(alert.model_name, alert.kind, alert.subject))
                               .with_for_update()).mappings().first()
            if row is not None:
                return int(row["id"]), _update(conn, row, alert)
            opened = conn.execute(
                pg_insert(alerts).values(**_row(alert)).on_conflict_do_nothing(
                    index_elements=[alerts.c.model_name, alerts.c.kind, sa.text("coalesce(subject, '')")],
                    index_where=sa.text("state = 'open'"))
                .returning(alerts.c.id)).scalar_one_or_none()
            if opened is not None:
                return int(opened), True
    raise DatabaseError(f"alert {alert.kind} for {alert.model_name}: the open alert changed {_RACE_ATTEMPTS} "
                        "times while it was being recorded")


def _update(conn: sa.Connection, row: sa.RowMapping, alert: Alert) -> bool:
    """Update the open `row` with a repeated `alert` (see the module docstring); whether to deliver it (its
    severity rose)."""
    day, latest, first = alert.partition_date, row["partition_date"], row["first_day"]
    is_latest = day is None or latest is None or day >= latest
    rose = SEVERITIES.index(alert.severity) > SEVERITIES.index(row["severity"])
    values: dict[str, Any] = {"updated_at": sa.func.now(),
                              "occurrences": row["occurrences"] + (0 if day is not None and day == latest else 1)}
    if day is not None and (first is None or day < first):
        values["first_day"] = day
    if is_latest:
        values.update(partition_date=day if day is not None else latest, message=alert.message,
                      details=json_safe(alert.details or {}), run_id=alert.run_id, dag_id=alert.dag_id,
                      severity=alert.severity)
    elif rose:
        values["severity"] = alert.severity
    conn.execute(alerts.update().where(alerts.c.id == row["id"]).values(**values))
    return rose

"""Airflow's side of alerting: the channels from Airflow connections, and the DAG failure notifier.

`register_channels()` (called inside a running task, never at parse time) registers with `ml_batch.ops.alerts`:

- **webhook**: the Airflow connection `ml_batch_alerts_webhook` (override with ML_BATCH_ALERT_WEBHOOK_CONN_ID),
  Slack-compatible JSON. Its URL is the connection's extra `url`, or its host when that holds a full URL,
  or `<http|https>://host[:port]/<schema>` from a URI such as
  `AIRFLOW_CONN_ML_BATCH_ALERTS_WEBHOOK='https://hooks.slack.com/services/T000/B000/XXXX'`. Airflow keeps
  such a URI's query (`...?token=...`) as the connection's extras: every extra but `url` and `scheme` goes
  back into the rebuilt URL's query, so the token reaches the receiver. A missing connection means no webhook
  channel.
- **email**: through Airflow's SMTP provider when ML_BATCH_ALERT_EMAILS (comma-separated) is set; the SMTP
  server and credentials come from the Airflow connection `smtp_default` (or ML_BATCH_SMTP_CONN_ID).

A run failure is an event: delivered first and stored in the `alerts` table best-effort
(`ml_batch.ops.alerts.record`), so a failure caused by the database going down is still reported. A day
refused as incomplete (`incomplete_day`) is a condition: one open alert per model and day, sent once. A mail's subject
is the alert's headline (`[ml-batch] CRITICAL run_failure <model>`, RESOLVED for a resolved notice) and its
body ends with the link to what to do (`ml_batch.ops.alerts.runbook`).

`MlBatchAlertNotifier` turns a failure into a `run_failure` alert (`failure_alert`) that names the day being
scored (`ml_batch.run.partition.resolve_day` of the run's `date` param, data interval and `run_after`, the
inputs the task bodies give it; also the alert's `partition_date`), the failing task and the first line of
the cause, without a batch failure's failing values (`ml_batch.errors.without_values`: alerts are stored
where the analyst role reads). Airflow hands a task-level failure callback the exception; a DAG-level
one (Airflow 3's DAG processor, `dag.test()`) gets none, only a `reason` such as "task_failure", and the alert
says so and names the task whose log holds the cause.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import os
import smtplib
import urllib.parse
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier

from ml_batch.errors import ConfigError, DayIncomplete, without_values
from ml_batch.ops.alerts import (
    Alert,
    DeliveryError,
    WebhookChannel,
    incomplete_day_subject,
    register_channel,
    runbook,
)

logger = logging.getLogger(__name__)

DEFAULT_WEBHOOK_CONN_ID = "ml_batch_alerts_webhook"
_MAX_CAUSE = 1000
#: Extras of the webhook connection that configure it; every other extra is a query parameter of its URL.
_NOT_QUERY = frozenset({"url", "scheme"})


def webhook_conn_id() -> str:
    return os.environ.get("ML_BATCH_ALERT_WEBHOOK_CONN_ID", DEFAULT_WEBHOOK_CONN_ID)


def webhook_url_from_connection(connection_id: str) -> str | None:
    """The webhook URL of an Airflow Connection, or None when no such connection is defined."""
    from ml_batch.airflow.runtime import connection

    conn = connection(connection_id)
    if conn is None:
        return None
    extra = conn.extra_dejson or {}
    if extra.get("url"):
        return str(extra["url"])
    host = conn.host or ""
    if "://" in host:
        return host
    scheme = conn.conn_type if conn.conn_type in ("http", "https") else str(extra.get("scheme") or "https")
    port = f":{conn.port}" if conn.port else ""
    # Airflow parses a URI's query into the extras: they go back as the query (a webhook's token often is one).
    query = urllib.parse.urlencode({k: str(v) for k, v in extra.items() if k not in _NOT_QUERY})
    return f"{scheme}://{host}{port}/{(conn.schema or '').lstrip('/')}" + (f"?{query}" if query else "")


class EmailChannel:
    """Mails the alert through Airflow's SMTP provider to `recipients`."""

    name = "email"

    def __init__(self, recipients: list[str], conn_id: str) -> None:
        self.recipients = recipients
        self.conn_id = conn_id

    def describe(self) -> str:
        return f"email via connection {self.conn_id} to {len(self.recipients)} recipients"

    def send(self, alert: Alert) -> None:
        from airflow.providers.smtp.hooks.smtp import SmtpHook
        from airflow.sdk.exceptions import AirflowException

        try:
            with SmtpHook(smtp_conn_id=self.conn_id) as hook:
                hook.send_email_smtp(to=self.recipients, subject=alert.headline(), html_content=email_body(alert))
        except (smtplib.SMTPException, OSError, AirflowException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None


def email_body(alert: Alert) -> str:
    """The HTML of an alert's mail: its message (escaped), its day and state, and the link to what to do."""
    link = html.escape(runbook(alert.kind), quote=True)
    day = alert.partition_date.isoformat() if alert.partition_date else "no day"
    return (f"<p>{html.escape(alert.message)}</p><p>day {day}, state {alert.state}</p>"
            f'<p>What to do: <a href="{link}">{link}</a></p>')


def register_channels() -> list[str]:
    """Register the webhook and email channels configured in Airflow; the names registered."""
    registered = []
    url = webhook_url_from_connection(webhook_conn_id())
    if url is not None:
        try:
            register_channel(WebhookChannel(url))
            registered.append("webhook")
        except ValueError as exc:
            logger.error("Airflow connection %r is not a usable alert webhook: %s", webhook_conn_id(), exc)
    recipients = [r.strip() for r in os.environ.get("ML_BATCH_ALERT_EMAILS", "").split(",") if r.strip()]
    if recipients:
        register_channel(EmailChannel(recipients, os.environ.get("ML_BATCH_SMTP_CONN_ID", "smtp_default")))
        registered.append("email")
    return registered


class MlBatchAlertNotifier(BaseNotifier):
    """Delivers an alert of `kind` for `model` with the failing task and exception, then records it."""

    template_fields = ()

    def __init__(self, model: str, kind: str = "run_failure") -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # DAG-level callbacks under dag.test() get a serialized DAG without get_template_env
        # (apache/airflow#64649); nothing here is templated, so rendering can be skipped safely.
        return None

    def notify(self, context: Any) -> None:
        from ml_batch.airflow.runtime import task_engine, task_settings
        from ml_batch.ops import alerts

        alert = failure_alert(self.model, self.kind, context)
        register_channels()
        # The engine is built inside `record`, after delivery: the failure may be the database itself.
        alerts.record(lambda: task_engine(task_settings()), alert)


def failure_alert(model: str, kind: str, context: Mapping[str, Any]) -> Alert:
    """The alert of a failed run from an Airflow callback's context: the DAG, run, day, task and cause.

    Args:
        model: The model the DAG scores.
        kind: The alert kind (`run_failure`).
        context: The callback's context (a task's, with `exception`, or a DAG's, with `reason` only).

    Returns:
        A critical alert whose `partition_date` is the run's day (None when the context cannot tell it).
    """
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    task_id = getattr(ti, "task_id", None)
    dag_id = getattr(dag_run, "dag_id", None) or getattr(context.get("dag"), "dag_id", None)
    run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
    day = _failed_day(context)
    reason = context.get("reason")
    if isinstance(exception, BaseException):
        cause = without_values(exception)  # stored in `alerts`, which the analyst role reads
    else:
        where = f"the log of task {task_id}" if task_id else "the task logs"
        cause = f"{reason or 'task failure'} (the DAG's failure callback gets no exception: see {where})"
    # The day comes last but is never cut off: the cause is shortened first.
    shown = cause if len(cause) <= _MAX_CAUSE else cause[: _MAX_CAUSE - 1] + "…"
    message = (f"{dag_id or '?'} run {run_id or '?'} failed" + (f" in task {task_id}" if task_id else "")
               + f": {shown}; day {day.isoformat() if day else 'unknown'}")
    details = {"task_id": task_id, "reason": reason, "day": day.isoformat() if day else None, "cause": cause}
    kind = _kind_of(kind, exception)
    return Alert(kind=kind, severity="critical", message=message, model_name=model, partition_date=day,
                 dag_id=dag_id, run_id=run_id, details=details, subject=_subject_of(kind, day))


def _subject_of(kind: str, day: dt.date | None) -> str | None:
    """An `incomplete_day` alert is about its day (`ml_batch.ops.alerts.incomplete_day_subject`): each refused
    day is open until it is published whole, whatever later days do."""
    return incomplete_day_subject(day) if kind == "incomplete_day" and day is not None else None


def _failed_day(context: Mapping[str, Any]) -> dt.date | None:
    """The day the run scores, by the rule the task bodies use (`ml_batch.airflow.runtime.run_day`); None when
    the context cannot tell it (a DAG callback's minimal context, a `date` param that is not a date)."""
    from ml_batch.airflow.runtime import run_day

    try:
        return run_day(context)[0]
    except (ConfigError, KeyError) as exc:
        logger.warning("the failure alert names no day: %s", exc)
        return None


def _kind_of(kind: str, exception: object) -> str:
    """`incomplete_day` for a day refused as incomplete (`DayIncomplete`, also as the cause of Airflow's
    fail-without-retry exception), else `kind`."""
    seen = exception if isinstance(exception, BaseException) else None
    while seen is not None:
        if isinstance(seen, DayIncomplete):
            return "incomplete_day"
        seen = seen.__cause__
    return kind

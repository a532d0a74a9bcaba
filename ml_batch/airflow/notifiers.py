"""Airflow notifier: every failure becomes an `alerts` row and a log line; optionally an email.

Email goes through Airflow's SMTP provider when ML_BATCH_ALERT_EMAILS (comma-separated) is set; the SMTP
server and credentials come from the Airflow connection `smtp_default` (or ML_BATCH_SMTP_CONN_ID), never
from code.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow.sdk import BaseNotifier

logger = logging.getLogger(__name__)


class MlBatchAlertNotifier(BaseNotifier):
    """Records an alert of `kind` for `model` with the failing task and exception."""

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
        from ml_batch import alerts
        from ml_batch.airflow.runtime import task_engine, task_settings
        from ml_batch.alerts import Alert

        ti = context.get("ti") or context.get("task_instance")
        dag_run = context.get("dag_run")
        exception = context.get("exception")
        task_id = getattr(ti, "task_id", None)
        message = (f"{getattr(dag_run, 'dag_id', '?')} run {getattr(dag_run, 'run_id', '?')} failed"
                   + (f" in task {task_id}" if task_id else "")
                   + (f": {exception}" if exception else f" ({context.get('reason') or 'task failure'})"))
        alert = Alert(kind=self.kind, severity="critical", message=message[:2000], model_name=self.model,
                      dag_id=getattr(dag_run, "dag_id", None), run_id=getattr(dag_run, "run_id", None),
                      details={"task_id": task_id, "reason": context.get("reason")})
        alerts.record(task_engine(task_settings()), alert)
        _email(alert)


def _email(alert: Any) -> None:
    recipients = [r.strip() for r in os.environ.get("ML_BATCH_ALERT_EMAILS", "").split(",") if r.strip()]
    if not recipients:
        return
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    conn_id = os.environ.get("ML_BATCH_SMTP_CONN_ID", "smtp_default")
    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=recipients, subject=f"[ml-batch] {alert.kind}: {alert.model_name}",
                             html_content=f"<p>{alert.message}</p>")

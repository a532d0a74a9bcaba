"""Alerts: recorded in the `alerts` table and logged; optionally mailed (see ml_batch.airflow.notifiers).

Kinds: run_failure, dataset_drift, performance_floor, performance_estimate, gate_reject, gate_promote,
rollback (`KINDS`).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ml_batch.db.tables import alerts

logger = logging.getLogger(__name__)

KINDS = ("run_failure", "dataset_drift", "performance_floor", "performance_estimate", "gate_reject", "gate_promote",
         "rollback")
SEVERITIES = ("info", "warning", "critical")


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


def record(engine: sa.Engine, alert: Alert) -> int:
    """Store and log an alert; returns its id."""
    if alert.kind not in KINDS:
        raise ValueError(f"alert kind {alert.kind!r}: expected one of {KINDS}")
    if alert.severity not in SEVERITIES:
        raise ValueError(f"alert severity {alert.severity!r}: expected one of {SEVERITIES}")
    level = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}[alert.severity]
    logger.log(level, "ALERT %s [%s] %s: %s", alert.kind, alert.severity, alert.model_name or "-", alert.message)
    with engine.begin() as conn:
        return int(conn.execute(
            alerts.insert().values(
                model_name=alert.model_name, kind=alert.kind, severity=alert.severity,
                partition_date=alert.partition_date, dag_id=alert.dag_id, run_id=alert.run_id,
                message=alert.message, details=alert.details or {},
            ).returning(alerts.c.id)
        ).scalar_one())


def recent(engine: sa.Engine, model: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alerts, newest first."""
    stmt = sa.select(alerts).order_by(alerts.c.id.desc()).limit(limit)
    if model is not None:
        stmt = stmt.where(alerts.c.model_name == model)
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings().all()]

"""Reports kept in the database (`reports`, migration 0009): drift reports and GX validation results.

Readers without the workers' disks (the UI plugin in the api-server) find them here. One row per model, day,
kind, run and part; storing the same one again replaces it, so a retried task leaves one row.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from ml_batch.db.tables import REPORT_KINDS, reports
from ml_batch.errors import MlBatchError

logger = logging.getLogger(__name__)

DRIFT_REPORT = "drift_report"
VALIDATION_RESULT = "validation_result"
MEDIA_TYPES = {DRIFT_REPORT: "text/html", VALIDATION_RESULT: "application/json"}


class ReportNotFound(MlBatchError):
    """No stored report matches what was asked for."""

    deterministic = True


def store(conn: sa.Connection, *, model: str, day: dt.date, kind: str, run_id: str, content: str,
          part: str = "") -> None:
    """Insert or replace one report, in the caller's transaction."""
    if kind not in REPORT_KINDS:
        raise ValueError(f"report kind {kind!r} is not one of {list(REPORT_KINDS)}")
    values = {"model_name": model, "partition_date": day, "kind": kind, "run_id": run_id, "part": part,
              "media_type": MEDIA_TYPES[kind], "content": content}
    stmt = insert(reports).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=[reports.c.model_name, reports.c.partition_date, reports.c.kind, reports.c.run_id,
                        reports.c.part],
        set_={"media_type": stmt.excluded.media_type, "content": stmt.excluded.content, "created_at": sa.func.now()},
    ))
    logger.info("stored %s of %s %s run %s%s (%d characters)", kind, model, day, run_id,
                f" part {part}" if part else "", len(content))


def delete_day(conn: sa.Connection, *, model: str, day: dt.date, kind: str) -> None:
    """Remove every report of `kind` of a model's day (a day keeps one drift report: the latest check's)."""
    conn.execute(reports.delete().where(reports.c.model_name == model, reports.c.partition_date == day,
                                        reports.c.kind == kind))


def fetch(engine: sa.Engine, *, model: str, day: dt.date, kind: str, run_id: str | None = None,
          part: str = "") -> tuple[str, str]:
    """(media type, content) of a stored report; the newest of the day when `run_id` is None."""
    query = sa.select(reports.c.media_type, reports.c.content).where(
        reports.c.model_name == model, reports.c.partition_date == day, reports.c.kind == kind,
        reports.c.part == part)
    if run_id is not None:
        query = query.where(reports.c.run_id == run_id)
    with engine.connect() as conn:
        row = conn.execute(query.order_by(reports.c.created_at.desc()).limit(1)).first()
    if row is None:
        raise ReportNotFound(f"no {kind} stored for model {model!r} day {day}"
                             + (f" run {run_id!r}" if run_id else "") + (f" part {part!r}" if part else ""))
    return str(row.media_type), str(row.content)

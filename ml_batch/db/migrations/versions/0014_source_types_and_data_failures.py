"""What a version was trained on, column by column, and a run that failed on its data for good.

- `model_versions.source_types`: the PostgreSQL type of each source column the version reads (key, event
  date, features), as the source had them when the version was trained or registered (`{column: type}`).
  Scoring compares the source against it before any COPY (`ml_batch.db.spec_check`), so a column that
  changed type (a categorical turned integer) is named instead of being scored as unseen values. NULL for
  versions registered before this revision (nothing recorded, nothing compared).
- `runs.data_failed_at`: when a step of the run failed on its data (a deterministic failure no retry of its
  plan can fix). The last step of the run to end drops its objects (staging, day snapshot, GX views), also
  a sibling shard that succeeded; planning the run again clears it (`ml_batch.run.lifecycle`).
- alert kinds `late` (a day not published by the spec's `publish_by`) and `approval_requested` (a candidate
  that passed the gate waits for a person's approval, `training.approval: required`); audit events
  `approval_requested`, `approved` and `approval_rejected` (a rejection or a timeout, with who and why).

The kind and event names are spelled out as they were when the revision was written (a revision never
imports application code).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


_ALERT_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback",
                "performance_estimate", "late_rows", "incomplete_day", "out_of_support")
_NEW_ALERT_KINDS = ("late", "approval_requested")
_MODEL_EVENTS = ("registered", "promoted", "rollback", "alias_removed", "gate_decision", "verified", "verify_failed")
_NEW_MODEL_EVENTS = ("approval_requested", "approved", "approval_rejected")


def _replace_check(name: str, table: str, column: str, values: tuple[str, ...], schema: str) -> None:
    listed = ", ".join(f"'{value}'" for value in values)
    op.drop_constraint(name, table, schema=schema, type_="check")
    op.create_check_constraint(name, table, f"{column} IN ({listed})", schema=schema)


def upgrade() -> None:
    schema = _schema()
    op.add_column("model_versions", sa.Column("source_types", JSONB), schema=schema)
    op.add_column("runs", sa.Column("data_failed_at", sa.DateTime(timezone=True)), schema=schema)
    _replace_check("alerts_kind_known", "alerts", "kind", (*_ALERT_KINDS, *_NEW_ALERT_KINDS), schema)
    _replace_check("model_events_event_known", "model_events", "event", (*_MODEL_EVENTS, *_NEW_MODEL_EVENTS), schema)


def downgrade() -> None:
    schema = _schema()
    kinds = ", ".join(f"'{value}'" for value in _NEW_ALERT_KINDS)
    events = ", ".join(f"'{value}'" for value in _NEW_MODEL_EVENTS)
    op.execute(f'DELETE FROM "{schema}".alerts WHERE kind IN ({kinds})')  # noqa: S608 (constants)
    op.execute(f'DELETE FROM "{schema}".model_events WHERE event IN ({events})')  # noqa: S608 (constants)
    _replace_check("alerts_kind_known", "alerts", "kind", _ALERT_KINDS, schema)
    _replace_check("model_events_event_known", "model_events", "event", _MODEL_EVENTS, schema)
    op.drop_column("runs", "data_failed_at", schema=schema)
    op.drop_column("model_versions", "source_types", schema=schema)

"""Complete days: what a run knew about its day as a whole, reconcile runs and their alerts.

- `runs.partial`: the run published a day its completeness checks refused, because the operator allowed it
  (`ml-batch score --allow-partial`, the DAG's `allow_partial` param). False for every earlier run.
- `runs.day_check`: the plan's checks of the day as a whole (`ml_batch.run.completeness`): its volume
  against the expected one and how that was computed, the readiness query's answer, each feature's null
  share against the version's training data. `{}` for earlier runs.
- `runs.key_digest`, `runs.source_updated_at`: an order-independent digest of the keys the run read and the
  latest `source.updated_at_column` among them (`ml_batch.run.reconcile` compares them with the source
  now). NULL for earlier runs: reconcile then compares the row count only.
- run type `reconcile` (a day re-scored because its source changed after it was published), alert kinds
  `late_rows` (a reconcile re-scored a day) and `incomplete_day` (a day was refused as incomplete).

The values are spelled out as they were when the revision was written (a revision never imports application
code); `tests/integration/test_tables.py` checks that they agree with `ml_batch.db.tables`.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered", "cli", "test")
_ALERT_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback",
                "performance_estimate")
_NEW_RUN_TYPES = ("reconcile",)
_NEW_ALERT_KINDS = ("late_rows", "incomplete_day")


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _replace_check(name: str, table: str, column: str, values: tuple[str, ...], schema: str) -> None:
    op.drop_constraint(name, table, schema=schema, type_="check")
    op.create_check_constraint(name, table, _check(column, values), schema=schema)


def upgrade() -> None:
    schema = _schema()
    op.add_column("runs", sa.Column("partial", sa.Boolean, nullable=False, server_default=sa.false()),
                  schema=schema)
    op.add_column("runs", sa.Column("day_check", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
                  schema=schema)
    op.add_column("runs", sa.Column("key_digest", sa.Text), schema=schema)
    op.add_column("runs", sa.Column("source_updated_at", sa.DateTime(timezone=True)), schema=schema)
    _replace_check("runs_run_type_known", "runs", "run_type", (*_RUN_TYPES, *_NEW_RUN_TYPES), schema)
    _replace_check("alerts_kind_known", "alerts", "kind", (*_ALERT_KINDS, *_NEW_ALERT_KINDS), schema)


def downgrade() -> None:
    schema = _schema()
    runs = sa.table("runs", sa.column("run_type", sa.Text), schema=schema)
    alerts = sa.table("alerts", sa.column("kind", sa.Text), schema=schema)
    op.execute(runs.update().where(runs.c.run_type.in_(_NEW_RUN_TYPES)).values(run_type="manual"))
    op.execute(alerts.delete().where(alerts.c.kind.in_(_NEW_ALERT_KINDS)))
    _replace_check("alerts_kind_known", "alerts", "kind", _ALERT_KINDS, schema)
    _replace_check("runs_run_type_known", "runs", "run_type", _RUN_TYPES, schema)
    for column in ("source_updated_at", "key_digest", "day_check", "partial"):
        op.drop_column("runs", column, schema=schema)

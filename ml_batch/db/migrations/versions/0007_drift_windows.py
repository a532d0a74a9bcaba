"""Drift over a window and sustained drift: a JSON detail per checked day.

`drift_days.detail` holds what a day's check found beyond the day itself: the verdict over the pooled last
`drift.window_days` days, whether `drift.alert_after` (K of the last M days) is met, the importance-weighted
share and where the thresholds came from (calibrated on the reference's own days, or fixed). The day's own
verdict stays in `dataset_drift`. Rows written before this revision get `{}`. Alerts may also be of kind
`performance_estimate` (a label-free performance estimate below `training.min_score`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback")


def _kind_check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def upgrade() -> None:
    schema = _schema()
    op.add_column("drift_days", sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
                  schema=schema)
    op.drop_constraint("alerts_kind_known", "alerts", schema=schema, type_="check")
    op.create_check_constraint("alerts_kind_known", "alerts", _kind_check((*_KINDS, "performance_estimate")),
                               schema=schema)


def downgrade() -> None:
    schema = _schema()
    alerts = sa.table("alerts", sa.column("kind"), schema=schema)
    op.execute(alerts.delete().where(alerts.c.kind == "performance_estimate"))
    op.drop_constraint("alerts_kind_known", "alerts", schema=schema, type_="check")
    op.create_check_constraint("alerts_kind_known", "alerts", _kind_check(_KINDS), schema=schema)
    op.drop_column("drift_days", "detail", schema=schema)

"""Reports kept in the database: drift reports (HTML) and GX validation results (JSON).

The UI plugin of the api-server reads the database only, never a worker's disk, so what the monitoring and
validation steps used to leave only as files is stored here too (the files are still written when a folder
is configured). One row per model, day, kind, run and part: `part` tells a run's shards apart (`s0`, `s1`,
...) and is '' for a report of the whole day. A re-run of the same run replaces its row.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "reports",
        sa.Column("model_name", sa.Text, primary_key=True),
        sa.Column("partition_date", sa.Date, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("part", sa.Text, primary_key=True, server_default=sa.text("''")),
        sa.Column("media_type", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("kind IN ('drift_report', 'validation_result')", name="reports_kind_known"),
        schema=schema,
    )
    op.create_index("reports_model_kind_day", "reports", ["model_name", "kind", "partition_date"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_index("reports_model_kind_day", "reports", schema=schema)
    op.drop_table("reports", schema=schema)

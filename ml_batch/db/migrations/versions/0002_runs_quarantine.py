"""Daily runs: one row per run (and per shard), and the quarantine of rows that failed validation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_JSON_EMPTY = sa.text("'{}'::jsonb")


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    op.create_table(
        "runs",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("run_type", sa.Text, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
        sa.Column("shards", sa.Integer, nullable=False),
        sa.Column("rows_extracted", sa.BigInteger),
        sa.Column("rows_scored", sa.BigInteger),
        sa.Column("rows_quarantined", sa.BigInteger),
        sa.Column("score_mean", sa.Float),
        sa.Column("stage_seconds", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("model_name", "run_id", name="runs_pkey"),
        sa.CheckConstraint("status IN ('running', 'success', 'failed', 'dry_run')", name="runs_status_known"),
        sa.CheckConstraint(
            "rows_extracted IS NULL OR rows_extracted = rows_scored + rows_quarantined",
            name="runs_rows_add_up",
        ),
        schema=schema,
    )
    op.create_index("runs_model_day", "runs", ["model_name", "partition_date"], schema=schema)
    op.create_table(
        "run_shards",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("rows_extracted", sa.BigInteger, nullable=False),
        sa.Column("rows_scored", sa.BigInteger, nullable=False),
        sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
        sa.Column("score_sum", sa.Float, nullable=False),
        sa.Column("stage_seconds", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model_name", "run_id", "shard", name="run_shards_pkey"),
        sa.ForeignKeyConstraint(
            ["model_name", "run_id"], [f"{schema}.runs.model_name", f"{schema}.runs.run_id"],
            name="run_shards_run_fkey", ondelete="CASCADE",
        ),
        sa.CheckConstraint("rows_extracted = rows_scored + rows_quarantined", name="run_shards_rows_add_up"),
        schema=schema,
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("entity_key", sa.Text),
        sa.Column("reasons", JSONB, nullable=False),
        sa.Column("row_data", JSONB, nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=schema,
    )
    op.create_index("quarantine_model_day", "quarantine", ["model_name", "partition_date"], schema=schema)
    op.create_index("quarantine_run", "quarantine", ["model_name", "run_id", "shard"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_table("quarantine", schema=schema)
    op.drop_table("run_shards", schema=schema)
    op.drop_table("runs", schema=schema)

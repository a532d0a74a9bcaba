"""Run liveness: who last worked on a run and when, whether it runs in one process, when it was cleaned up.

A run is dead when no process holds its advisory lock and either it ran in one process (`single_process`:
`ml-batch score`) or its last activity (`heartbeat_at`, a shard's `finished_at`, `started_at`) is older
than the staleness window; `ml_batch.lifecycle` marks it failed and removes its staging table, GX views
and quarantine rows, then sets `cleaned_at`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    op.add_column("runs", sa.Column("heartbeat_at", sa.DateTime(timezone=True)), schema=schema)
    op.add_column("runs", sa.Column("holder", sa.Text), schema=schema)
    op.add_column("runs", sa.Column("single_process", sa.Boolean, nullable=False, server_default=sa.false()),
                  schema=schema)
    op.add_column("runs", sa.Column("cleaned_at", sa.DateTime(timezone=True)), schema=schema)
    # The cleanup looks for unfinished runs of one model; finished runs are the vast majority.
    op.create_index("runs_unfinished", "runs", ["model_name"], schema=schema,
                    postgresql_where=sa.text("status IN ('running', 'failed') AND cleaned_at IS NULL"))


def downgrade() -> None:
    schema = _schema()
    op.drop_index("runs_unfinished", "runs", schema=schema)
    for column in ("cleaned_at", "single_process", "holder", "heartbeat_at"):
        op.drop_column("runs", column, schema=schema)

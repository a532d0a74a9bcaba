"""Run lifecycle: each day's published run, and the quarantine readers see (the published run's rows).

Quarantine rows belong to the run that wrote them; `published_days` names the run whose predictions a day
holds (set in the publishing transaction); the view `quarantine_published` is the quarantine of those runs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ml_batch.db.sqlfiles import quote_ident

revision = "0005"
down_revision = "0004"
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
        "published_days",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model_name", "partition_date", name="published_days_pkey"),
        sa.ForeignKeyConstraint(
            ["model_name", "run_id"], [f"{schema}.runs.model_name", f"{schema}.runs.run_id"],
            name="published_days_run_fkey", ondelete="CASCADE",
        ),
        schema=schema,
    )
    # Days published before this revision: the last successful run of the day published it. Only the
    # schema is formatted in (ml-batch's own, validated and quoted by quote_ident).
    q = quote_ident(schema)
    op.execute(
        f"INSERT INTO {q}.published_days (model_name, partition_date, run_id, model_version, published_at) "  # noqa: S608
        "SELECT DISTINCT ON (model_name, partition_date) model_name, partition_date, run_id, model_version, "
        f"coalesce(finished_at, started_at) FROM {q}.runs WHERE status = 'success' "
        "ORDER BY model_name, partition_date, finished_at DESC NULLS LAST"
    )
    op.execute(
        f"CREATE VIEW {q}.quarantine_published AS SELECT q.* FROM {q}.quarantine AS q "  # noqa: S608
        f"JOIN {q}.published_days AS p "
        "ON p.model_name = q.model_name AND p.partition_date = q.partition_date AND p.run_id = q.run_id"
    )

def downgrade() -> None:
    schema = _schema()
    op.execute(f"DROP VIEW {quote_ident(schema)}.quarantine_published")
    op.drop_table("published_days", schema=schema)

"""Model registry: versions, aliases (one version per alias per model), audited events.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision = "0001"
down_revision = None
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
        "model_versions",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("artifact", BYTEA, nullable=False),
        sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
        sa.Column("artifact_size", sa.BigInteger, nullable=False),
        sa.Column("feature_schema", JSONB, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("estimator", sa.Text, nullable=False),
        sa.Column("params", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.Column("train_start", sa.Date),
        sa.Column("train_end", sa.Date),
        sa.Column("holdout_start", sa.Date),
        sa.Column("holdout_end", sa.Date),
        sa.Column("n_train", sa.Integer),
        sa.Column("n_holdout", sa.Integer),
        sa.Column("metrics", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.Column("code_version", sa.Text, nullable=False),
        sa.Column("spec_sha256", sa.CHAR(64), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("tags", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.PrimaryKeyConstraint("model_name", "version", name="model_versions_pkey"),
        sa.CheckConstraint("version > 0", name="model_versions_version_positive"),
        sa.CheckConstraint("artifact_sha256 ~ '^[0-9a-f]{64}$'", name="model_versions_sha256_hex"),
        sa.CheckConstraint("source IN ('trained', 'registered')", name="model_versions_source_known"),
        sa.CheckConstraint("task IN ('binary', 'regression')", name="model_versions_task_known"),
        schema=schema,
    )
    # The primary key (model_name, alias) is what guarantees at most one version per alias per model,
    # whatever the callers do concurrently.
    op.create_table(
        "model_aliases",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("alias", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model_name", "alias", name="model_aliases_pkey"),
        sa.ForeignKeyConstraint(
            ["model_name", "version"],
            [f"{schema}.model_versions.model_name", f"{schema}.model_versions.version"],
            name="model_aliases_version_fkey",
        ),
        sa.CheckConstraint("alias ~ '^[a-z][a-z0-9_]{0,62}$'", name="model_aliases_alias_format"),
        schema=schema,
    )
    op.create_table(
        "model_events",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("alias", sa.Text),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "event IN ('registered', 'promoted', 'rollback', 'alias_removed')", name="model_events_event_known"
        ),
        schema=schema,
    )
    op.create_index("model_events_model_time", "model_events", ["model_name", "id"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_table("model_events", schema=schema)
    op.drop_table("model_aliases", schema=schema)
    op.drop_table("model_versions", schema=schema)

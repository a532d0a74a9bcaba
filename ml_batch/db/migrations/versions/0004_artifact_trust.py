"""Artifact trust: each version's artifact is signed with an HMAC-SHA256 keyed by a secret that is not in
the database, so replacing the bytes and their sha256 together no longer makes them loadable.

Existing versions get no signature (NULL): the migration has no way to tell whether their bytes are still
the ones that were registered, so `registry.load` refuses them until they are retrained or re-registered.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    op.add_column("model_versions", sa.Column("artifact_hmac", sa.CHAR(64)), schema=schema)
    op.add_column("model_versions", sa.Column("artifact_key_id", sa.CHAR(16)), schema=schema)
    op.create_check_constraint("model_versions_signed_with_key", "model_versions",
                               "(artifact_hmac IS NULL) = (artifact_key_id IS NULL)", schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_constraint("model_versions_signed_with_key", "model_versions", schema=schema, type_="check")
    op.drop_column("model_versions", "artifact_key_id", schema=schema)
    op.drop_column("model_versions", "artifact_hmac", schema=schema)

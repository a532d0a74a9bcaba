"""The spec a run was planned with: `runs.spec_sha256`.

The plan pins the model's spec once (its text travels with the run plan); later tasks use that copy, and the
sha256 of its text is recorded on the run, so an edit of the spec file mid-run can neither change the run nor
go unnoticed. Runs recorded before this revision have NULL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    op.add_column("runs", sa.Column("spec_sha256", sa.CHAR(64)), schema=_schema())


def downgrade() -> None:
    op.drop_column("runs", "spec_sha256", schema=_schema())

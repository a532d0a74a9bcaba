"""Tree models compiled to native code: the shared library of a version, signed like its artifact, and which
path scored a run.

- `model_versions.compiled_library`: the bytes of the version's estimator compiled to a shared library
  (treelite imports the fitted trees, tl2cgen compiles them); NULL when the version has none.
- `model_versions.compiled_hmac`: HMAC-SHA256 of (model, version, library bytes) under the same key and key id
  as the artifact's signature (`ml_batch.model.signing`), verified before the library is loaded.
- `model_versions.compiled`: what compiling found (`{"status": ..., "reason": ..., "platform": ...,
  "library_sha256": ..., "max_abs_diff": ..., "compile_seconds": ...}`), also when nothing was compiled
  (an unsupported estimator, scores that were not identical, no compiler): the version says why.
- `runs.scoring_path`: `sklearn` or `compiled`, the path that scored the run (NULL for runs before this
  revision).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    op.add_column("model_versions", sa.Column("compiled_library", BYTEA), schema=schema)
    op.add_column("model_versions", sa.Column("compiled_hmac", sa.CHAR(64)), schema=schema)
    op.add_column("model_versions", sa.Column("compiled", JSONB), schema=schema)
    op.create_check_constraint("model_versions_compiled_signed", "model_versions",
                               "(compiled_library IS NULL) = (compiled_hmac IS NULL)", schema=schema)
    op.add_column("runs", sa.Column("scoring_path", sa.Text), schema=schema)
    op.create_check_constraint("runs_scoring_path_known", "runs",
                               "scoring_path IS NULL OR scoring_path IN ('sklearn', 'compiled')", schema=schema)


def downgrade() -> None:
    schema = _schema()
    op.drop_constraint("runs_scoring_path_known", "runs", schema=schema, type_="check")
    op.drop_column("runs", "scoring_path", schema=schema)
    op.drop_constraint("model_versions_compiled_signed", "model_versions", schema=schema, type_="check")
    op.drop_column("model_versions", "compiled", schema=schema)
    op.drop_column("model_versions", "compiled_hmac", schema=schema)
    op.drop_column("model_versions", "compiled_library", schema=schema)

"""Tree models compiled to native code: the shared library of a version, signed like its artifact, and which
path scored a run.

- `model_versions.compiled_library`: the bytes of the version's estimator compiled to a shared library
  (treelite imports the fitted trees, tl2cgen compiles them); NULL when the version has none.
- `model_versions.compiled_hmac`: HMAC-SHA256 of (model, version, library bytes) under the same key and key id
  as the artifact's signature (`ml_batch.model.signing`), verified before the library is loaded.
- `model_versions.compiled`: what compiling found (`{"status": ..., "reason": ..., "platform": ...,
  "library_sha256": ..., "max_abs_diff": ..., "compile_seconds": ...}`), also when nothing was compiled
  (an unsupported estimator, scores that were not identical, no compiler): the version says why.
- the roles granted `model_versions` column by column (analyst, UI) are granted `compiled`, never the library
  nor its signature (`ml_batch.ops.grants.HIDDEN_COLUMNS`).
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


_CARRY_GRANTS = """
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT DISTINCT a.grantee::regrole::text AS role
           FROM pg_attribute, aclexplode(attacl) AS a
           WHERE attrelid = '"{schema}".model_versions'::regclass AND attname = 'model_name'
             AND a.privilege_type = 'SELECT' AND a.grantee <> 0
  LOOP
    EXECUTE format('GRANT SELECT ({columns}) ON "{schema}".model_versions TO %s', r.role);
  END LOOP;
END $$
"""


def _carry_column_grants(schema: str, columns: tuple[str, ...]) -> None:
    """The roles granted `model_versions` column by column (the analyst and UI roles, `ml_batch.ops.grants`)
    read the new `columns` too, as a fresh grant would give them: without this the registry pages and the
    analysts' queries fail with "permission denied" after the upgrade until the grants are run again."""
    op.execute(_CARRY_GRANTS.format(schema=schema, columns=", ".join(columns)))


def upgrade() -> None:
    schema = _schema()
    op.add_column("model_versions", sa.Column("compiled_library", BYTEA), schema=schema)
    op.add_column("model_versions", sa.Column("compiled_hmac", sa.CHAR(64)), schema=schema)
    op.add_column("model_versions", sa.Column("compiled", JSONB), schema=schema)
    _carry_column_grants(schema, ("compiled",))  # never the library nor its signature (executable code)
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

"""Multiclass models: the class set a version predicts, and a label of a class it never saw.

- `model_versions.task` may be `multiclass` (beside `binary` and `regression`).
- `model_versions.classes`: the class names a multiclass version predicts, as text, in the order of its
  probabilities (the pipeline's `classes_`); NULL for binary and regression versions.
- `model_versions.class_counts`: the labelled rows of each class the version was trained and judged on,
  `{"train": {class: n}, "holdout": {class: n}}`; NULL for binary and regression versions.
- `shadow_predictions.predicted_class` and `shadow_predictions.class_scores`: a multiclass challenger's
  predicted class and every class's probability on a shadow day (NULL for binary and regression models, whose
  `predicted_label` stays a smallint).
- the roles granted `model_versions` column by column (analyst, UI) are granted the two new columns.
- alert kind `unseen_class`: a labelled day carries a class the version was not trained on (reported with
  its count, never mapped to another class nor dropped silently).

The task and kind names are spelled out as they were when the revision was written (a revision never
imports application code).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


_TASKS = ("binary", "regression")
_NEW_TASKS = ("multiclass",)
_ALERT_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback",
                "performance_estimate", "late_rows", "incomplete_day", "out_of_support", "late", "approval_requested")
_NEW_ALERT_KINDS = ("unseen_class",)


def _replace_check(name: str, table: str, column: str, values: tuple[str, ...], schema: str) -> None:
    listed = ", ".join(f"'{value}'" for value in values)
    op.drop_constraint(name, table, schema=schema, type_="check")
    op.create_check_constraint(name, table, f"{column} IN ({listed})", schema=schema)


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
    op.add_column("model_versions", sa.Column("classes", JSONB), schema=schema)
    op.add_column("model_versions", sa.Column("class_counts", JSONB), schema=schema)
    _carry_column_grants(schema, ("classes", "class_counts"))
    op.add_column("shadow_predictions", sa.Column("predicted_class", sa.Text), schema=schema)
    op.add_column("shadow_predictions", sa.Column("class_scores", JSONB), schema=schema)
    _replace_check("model_versions_task_known", "model_versions", "task", (*_TASKS, *_NEW_TASKS), schema)
    _replace_check("alerts_kind_known", "alerts", "kind", (*_ALERT_KINDS, *_NEW_ALERT_KINDS), schema)


def downgrade() -> None:
    schema = _schema()
    tasks = ", ".join(f"'{value}'" for value in _NEW_TASKS)
    kinds = ", ".join(f"'{value}'" for value in _NEW_ALERT_KINDS)
    # a multiclass version (and the alias on it) cannot be held by the older schema; its audit events stay
    op.execute(f'DELETE FROM "{schema}".model_aliases a USING "{schema}".model_versions v '  # noqa: S608 (constants)
               f"WHERE a.model_name = v.model_name AND a.version = v.version AND v.task IN ({tasks})")
    op.execute(f'DELETE FROM "{schema}".model_versions WHERE task IN ({tasks})')  # noqa: S608 (constants)
    op.execute(f'DELETE FROM "{schema}".alerts WHERE kind IN ({kinds})')  # noqa: S608 (constants)
    _replace_check("alerts_kind_known", "alerts", "kind", _ALERT_KINDS, schema)
    _replace_check("model_versions_task_known", "model_versions", "task", _TASKS, schema)
    op.drop_column("shadow_predictions", "class_scores", schema=schema)
    op.drop_column("shadow_predictions", "predicted_class", schema=schema)
    op.drop_column("model_versions", "class_counts", schema=schema)
    op.drop_column("model_versions", "classes", schema=schema)

"""Run types enforced by the database: CHECK `runs_run_type_known` on `runs.run_type`.

`runs.status` has been checked since revision 0002 (`runs_status_known`: running, success, failed,
dry_run); `runs.run_type` was free text, validated only by whichever caller wrote it. This revision gives it
the same guarantee. The values are spelled out here as they were when the revision was written (a revision
never imports application code); `ml_batch.db.tables.RUN_TYPES` is the list the code uses, and
`tests/integration/test_tables.py` checks that the two agree.

A database holding a run type outside the list cannot take the constraint: the upgrade stops and names the
values found, and the database stays at revision 0009.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NAME = "runs_run_type_known"
_RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered", "cli", "test")


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def upgrade() -> None:
    schema = _schema()
    runs = sa.table("runs", sa.column("run_type", sa.Text), schema=schema)
    unknown = op.get_bind().execute(
        sa.select(runs.c.run_type).distinct().where(runs.c.run_type.not_in(_RUN_TYPES)).order_by(runs.c.run_type)
    ).scalars().all()
    if unknown:
        raise RuntimeError(
            f"runs in schema {schema!r} have run types {unknown}: expected one of {list(_RUN_TYPES)}; "
            f"correct those rows, then upgrade again"
        )
    op.create_check_constraint(
        _NAME, "runs", "run_type IN (" + ", ".join(f"'{value}'" for value in _RUN_TYPES) + ")", schema=schema
    )


def downgrade() -> None:
    op.drop_constraint(_NAME, "runs", schema=_schema(), type_="check")

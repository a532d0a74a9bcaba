"""Model trust: what a version was trained on and the environment it was fitted in.

- `model_versions.n_excluded`, `exclusions`: the training window's rows that scoring would have quarantined
  and training therefore left out (`ml_batch.model.validity`): their count, and per reason and per part of
  the window (training, holdout) how many. NULL for versions registered before this revision (nobody
  checked) and for registered artifacts' holdouts checked elsewhere.
- `model_versions.environment`: the Python and library versions the version was fitted (or registered) with
  (`ml_batch.model.environment`); NULL before this revision.
- `model_versions.verified_environments`: the environments a `ml-batch models verify` re-scored the version
  in with the same scores (a list, oldest first; empty by default).
- `model_versions.holdout_sample`: a few hundred holdout rows' features and the scores recorded at training,
  what `models verify` re-scores.
- audit events `verified` and `verify_failed` (a `models verify` that matched the recorded scores, or did not).

The event names are spelled out as they were when the revision was written (a revision never imports
application code); `tests/integration/test_tables.py` checks that they agree with `ml_batch.db.tables`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_MODEL_EVENTS = ("registered", "promoted", "rollback", "alias_removed", "gate_decision")
_NEW_MODEL_EVENTS = ("verified", "verify_failed")


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def _replace_events_check(values: tuple[str, ...], schema: str) -> None:
    listed = ", ".join(f"'{value}'" for value in values)
    op.drop_constraint("model_events_event_known", "model_events", schema=schema, type_="check")
    op.create_check_constraint("model_events_event_known", "model_events", f"event IN ({listed})", schema=schema)


def upgrade() -> None:
    schema = _schema()
    op.add_column("model_versions", sa.Column("n_excluded", sa.Integer), schema=schema)
    op.add_column("model_versions", sa.Column("exclusions", JSONB), schema=schema)
    op.add_column("model_versions", sa.Column("environment", JSONB), schema=schema)
    op.add_column("model_versions", sa.Column("verified_environments", JSONB, nullable=False,
                                              server_default=sa.text("'[]'::jsonb")), schema=schema)
    op.add_column("model_versions", sa.Column("holdout_sample", JSONB), schema=schema)
    _replace_events_check((*_MODEL_EVENTS, *_NEW_MODEL_EVENTS), schema)


def downgrade() -> None:
    schema = _schema()
    listed = ", ".join(f"'{value}'" for value in _NEW_MODEL_EVENTS)
    op.execute(f'DELETE FROM "{schema}".model_events WHERE event IN ({listed})')  # noqa: S608 (constants)
    _replace_events_check(_MODEL_EVENTS, schema)
    for column in ("holdout_sample", "verified_environments", "environment", "exclusions", "n_excluded"):
        op.drop_column("model_versions", column, schema=schema)

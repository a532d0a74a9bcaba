"""Alert state: a condition alert stays open, is updated by repeated days and resolved once when it clears.

- `alerts.subject`: what the alert is about within its kind (a feature for `out_of_support`, a metric for
  the performance kinds; NULL for kinds about the model as a whole).
- `alerts.state`: "open" or "resolved" for a condition kind, "event" for the kinds delivered every time
  (`ml_batch.ops.alerts.CONDITION_KINDS`). A CHECK lists the three. Its default is "event": a writer that
  does not know alert state (an older worker during an upgrade) keeps inserting one row per alert, as before.
- `alerts.first_day`, `occurrences`, `updated_at`, `resolved_at`, `resolved_day`: the day the alert opened,
  how many checks found its condition, when it last changed, when and by which day's check it was resolved.
- the unique index `alerts_one_open` on (model_name, kind, coalesce(subject, '')) WHERE state = 'open': two
  tasks raising the same alert at once cannot open two.
- alert kind `out_of_support` (rows outside what the version was trained on).

Existing rows are migrated as **resolved** (condition kinds) or **event** (the others), with `first_day` =
`partition_date`, `updated_at` = `created_at` and `resolved_at` NULL (closed by this revision, time unknown).
They were written one per day, several per condition, and nobody knows which conditions still hold: opening
them would break the one-open rule and later send "resolved" notices about stale rows, whereas a condition
that still holds is found again by the next day's check, which opens a fresh alert and delivers it once.

The values are spelled out as they were when the revision was written (a revision never imports application
code); `tests/integration/test_tables.py` checks that they agree with `ml_batch.db.tables`.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_ALERT_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback",
                "performance_estimate", "late_rows", "incomplete_day")
_NEW_ALERT_KINDS = ("out_of_support",)
_CONDITION_KINDS = ("dataset_drift", "performance_floor", "performance_estimate", "incomplete_day")
_STATES = ("open", "resolved", "event")


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def _check(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _replace_check(name: str, table: str, column: str, values: tuple[str, ...], schema: str) -> None:
    op.drop_constraint(name, table, schema=schema, type_="check")
    op.create_check_constraint(name, table, _check(column, values), schema=schema)


def upgrade() -> None:
    schema = _schema()
    op.add_column("alerts", sa.Column("subject", sa.Text), schema=schema)
    op.add_column("alerts", sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'event'")),
                  schema=schema)
    op.add_column("alerts", sa.Column("first_day", sa.Date), schema=schema)
    op.add_column("alerts", sa.Column("occurrences", sa.Integer, nullable=False, server_default=sa.text("1")),
                  schema=schema)
    op.add_column("alerts", sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False,
                                      server_default=sa.func.now()), schema=schema)
    op.add_column("alerts", sa.Column("resolved_at", sa.DateTime(timezone=True)), schema=schema)
    op.add_column("alerts", sa.Column("resolved_day", sa.Date), schema=schema)
    alerts = sa.table("alerts", sa.column("kind", sa.Text), sa.column("state", sa.Text),
                      sa.column("partition_date", sa.Date), sa.column("first_day", sa.Date),
                      sa.column("created_at", sa.DateTime(timezone=True)),
                      sa.column("updated_at", sa.DateTime(timezone=True)), schema=schema)
    op.execute(alerts.update().values(
        state=sa.case((alerts.c.kind.in_(_CONDITION_KINDS), sa.literal("resolved")), else_=sa.literal("event")),
        first_day=alerts.c.partition_date, updated_at=alerts.c.created_at))
    op.create_check_constraint("alerts_state_known", "alerts", _check("state", _STATES), schema=schema)
    _replace_check("alerts_kind_known", "alerts", "kind", (*_ALERT_KINDS, *_NEW_ALERT_KINDS), schema)
    op.create_index("alerts_one_open", "alerts", ["model_name", "kind", sa.text("coalesce(subject, '')")],
                    unique=True, schema=schema, postgresql_where=sa.text("state = 'open'"))


def downgrade() -> None:
    schema = _schema()
    alerts = sa.table("alerts", sa.column("kind", sa.Text), schema=schema)
    op.drop_index("alerts_one_open", "alerts", schema=schema)
    op.execute(alerts.delete().where(alerts.c.kind.in_(_NEW_ALERT_KINDS)))
    _replace_check("alerts_kind_known", "alerts", "kind", _ALERT_KINDS, schema)
    op.drop_constraint("alerts_state_known", "alerts", schema=schema, type_="check")
    for column in ("resolved_day", "resolved_at", "updated_at", "occurrences", "first_day", "state", "subject"):
        op.drop_column("alerts", column, schema=schema)

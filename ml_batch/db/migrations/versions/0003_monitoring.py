"""Monitoring: reference profiles, drift, realized performance, shadow scoring, alerts, gate decisions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_JSON_EMPTY = sa.text("'{}'::jsonb")
_EVENTS_V1 = "event IN ('registered', 'promoted', 'rollback', 'alias_removed')"
_EVENTS_V2 = "event IN ('registered', 'promoted', 'rollback', 'alias_removed', 'gate_decision')"


def _schema() -> str:
    """The target schema, handed over by `ml_batch.db.migrate` (never hard-coded)."""
    config = op.get_context().config
    assert config is not None
    return str(config.attributes["schema"])


def _now() -> sa.Column:
    return sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    schema = _schema()
    # What drift needs about the training data, stored once at registration.
    op.add_column("model_versions", sa.Column("reference_profile", JSONB), schema=schema)
    op.drop_constraint("model_events_event_known", "model_events", schema=schema, type_="check")
    op.create_check_constraint("model_events_event_known", "model_events", _EVENTS_V2, schema=schema)

    op.create_table(
        "drift_results",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("feature", sa.Text, nullable=False),
        sa.Column("test", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float),
        sa.Column("p_value", sa.Float),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default=_JSON_EMPTY),
        _now(),
        sa.PrimaryKeyConstraint("model_name", "partition_date", "feature", "test", name="drift_results_pkey"),
        schema=schema,
    )
    op.create_table(
        "drift_days",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("rows_checked", sa.BigInteger, nullable=False),
        sa.Column("features", sa.Integer, nullable=False),
        sa.Column("drifted_features", JSONB, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("dataset_drift", sa.Boolean, nullable=False),
        sa.Column("score_drift", sa.Boolean, nullable=False),
        sa.Column("report_path", sa.Text),
        _now(),
        sa.PrimaryKeyConstraint("model_name", "partition_date", name="drift_days_pkey"),
        schema=schema,
    )
    op.create_table(
        "performance",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("metric", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("detail", JSONB, nullable=False, server_default=_JSON_EMPTY),
        _now(),
        sa.PrimaryKeyConstraint("model_name", "model_version", "partition_date", "metric", name="performance_pkey"),
        schema=schema,
    )
    op.create_table(
        "shadow_predictions",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=False),
        sa.Column("entity_key", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("predicted_label", sa.SmallInteger),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("model_name", "partition_date", "model_version", "entity_key",
                                name="shadow_predictions_pkey"),
        schema=schema,
    )
    op.create_table(
        "shadow_comparisons",
        sa.Column("model_name", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date, nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("champion_version", sa.Integer, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("agreement", sa.Float),
        sa.Column("score_correlation", sa.Float),
        sa.Column("metric", sa.Text),
        sa.Column("champion_metric", sa.Float),
        sa.Column("challenger_metric", sa.Float),
        sa.Column("labelled_n", sa.BigInteger),
        _now(),
        sa.PrimaryKeyConstraint("model_name", "partition_date", "challenger_version", name="shadow_comparisons_pkey"),
        schema=schema,
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("model_name", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("partition_date", sa.Date),
        sa.Column("dag_id", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False, server_default=_JSON_EMPTY),
        sa.CheckConstraint("severity IN ('info', 'warning', 'critical')", name="alerts_severity_known"),
        sa.CheckConstraint(
            "kind IN ('run_failure', 'dataset_drift', 'performance_floor', 'gate_reject', 'gate_promote', "
            "'rollback')", name="alerts_kind_known",
        ),
        schema=schema,
    )
    op.create_index("alerts_model_time", "alerts", ["model_name", "created_at"], schema=schema)


def downgrade() -> None:
    schema = _schema()
    for table in ("alerts", "shadow_comparisons", "shadow_predictions", "performance", "drift_days",
                  "drift_results"):
        op.drop_table(table, schema=schema)
    op.drop_constraint("model_events_event_known", "model_events", schema=schema, type_="check")
    op.create_check_constraint("model_events_event_known", "model_events", _EVENTS_V1, schema=schema)
    op.drop_column("model_versions", "reference_profile", schema=schema)

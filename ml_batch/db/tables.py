"""SQLAlchemy Core definitions of ml-batch's own tables (registry, runs, quarantine, monitoring).

The tables are created and changed only by the alembic migrations in `ml_batch/db/migrations/`; these
definitions are what the code queries with. They carry the placeholder schema `ml_batch`, which engines
from `ml_batch.db.engine` translate to the configured schema (ML_BATCH_SCHEMA).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

SCHEMA_PLACEHOLDER = "ml_batch"

metadata = sa.MetaData(schema=SCHEMA_PLACEHOLDER)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("artifact", BYTEA, nullable=False),
    sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
    # HMAC-SHA256 of (model, version, artifact) under ML_BATCH_ARTIFACT_KEY, and which key (0004); NULL for
    # versions registered before signing, which are refused.
    sa.Column("artifact_hmac", sa.CHAR(64)),
    sa.Column("artifact_key_id", sa.CHAR(16)),
    sa.Column("artifact_size", sa.BigInteger, nullable=False),
    sa.Column("feature_schema", JSONB, nullable=False),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("estimator", sa.Text, nullable=False),
    sa.Column("params", JSONB, nullable=False),
    sa.Column("train_start", sa.Date),
    sa.Column("train_end", sa.Date),
    sa.Column("holdout_start", sa.Date),
    sa.Column("holdout_end", sa.Date),
    sa.Column("n_train", sa.Integer),
    sa.Column("n_holdout", sa.Integer),
    sa.Column("metrics", JSONB, nullable=False),
    sa.Column("code_version", sa.Text, nullable=False),
    sa.Column("spec_sha256", sa.CHAR(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("tags", JSONB, nullable=False),
    sa.Column("reference_profile", JSONB),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("alias", sa.Text),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, nullable=False),
    sa.Column("run_type", sa.Text, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("artifact_sha256", sa.CHAR(64), nullable=False),
    sa.Column("shards", sa.Integer, nullable=False),
    sa.Column("rows_extracted", sa.BigInteger),
    sa.Column("rows_scored", sa.BigInteger),
    sa.Column("rows_quarantined", sa.BigInteger),
    sa.Column("score_mean", sa.Float),
    sa.Column("stage_seconds", JSONB, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # liveness (migration 0006, ml_batch.lifecycle)
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("holder", sa.Text),
    sa.Column("single_process", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cleaned_at", sa.DateTime(timezone=True)),
    sa.Column("spec_sha256", sa.CHAR(64)),  # the spec the run was planned with (migration 0008)
)

run_shards = sa.Table(
    "run_shards",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("rows_extracted", sa.BigInteger, nullable=False),
    sa.Column("rows_scored", sa.BigInteger, nullable=False),
    sa.Column("rows_quarantined", sa.BigInteger, nullable=False),
    sa.Column("score_sum", sa.Float, nullable=False),
    sa.Column("stage_seconds", JSONB, nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("partition_date", sa.Date, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("entity_key", sa.Text),
    sa.Column("reasons", JSONB, nullable=False),
    sa.Column("row_data", JSONB, nullable=False),
    sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# The run whose predictions a day holds, set in the publishing transaction (migration 0005); the view
# `quarantine_published` joins it to `quarantine`: the quarantine readers see.
published_days = sa.Table(
    "published_days",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

drift_results = sa.Table(
    "drift_results",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("feature", sa.Text, primary_key=True),
    sa.Column("test", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("threshold", sa.Float),
    sa.Column("p_value", sa.Float),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("detail", JSONB, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

drift_days = sa.Table(
    "drift_days",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.Integer, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("rows_checked", sa.BigInteger, nullable=False),
    sa.Column("features", sa.Integer, nullable=False),
    sa.Column("drifted_features", JSONB, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("dataset_drift", sa.Boolean, nullable=False),
    sa.Column("score_drift", sa.Boolean, nullable=False),
    sa.Column("report_path", sa.Text),
    # window verdict, sustained-drift status, weighted share, threshold source (revision 0007)
    sa.Column("detail", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

performance = sa.Table(
    "performance",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("model_version", sa.Integer, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("metric", sa.Text, primary_key=True),
    sa.Column("value", sa.Float),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("detail", JSONB, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

shadow_predictions = sa.Table(
    "shadow_predictions",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("model_version", sa.Integer, primary_key=True),
    sa.Column("entity_key", sa.Text, primary_key=True),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("predicted_label", sa.SmallInteger),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

shadow_comparisons = sa.Table(
    "shadow_comparisons",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("challenger_version", sa.Integer, primary_key=True),
    sa.Column("champion_version", sa.Integer, nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("agreement", sa.Float),
    sa.Column("score_correlation", sa.Float),
    sa.Column("metric", sa.Text),
    sa.Column("champion_metric", sa.Float),
    sa.Column("challenger_metric", sa.Float),
    sa.Column("labelled_n", sa.BigInteger),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("model_name", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("severity", sa.Text, nullable=False),
    sa.Column("partition_date", sa.Date),
    sa.Column("dag_id", sa.Text),
    sa.Column("run_id", sa.Text),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", JSONB, nullable=False),
)

# Drift reports (HTML) and GX validation results (JSON) for readers without the workers' disks, such as the
# UI plugin (migration 0009). `part` is a shard ("s0", ...) or '' for the whole day.
REPORT_KINDS = ("drift_report", "validation_result")
reports = sa.Table(
    "reports",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("partition_date", sa.Date, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("part", sa.Text, primary_key=True, server_default=sa.text("''")),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

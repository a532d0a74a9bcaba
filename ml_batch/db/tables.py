"""SQLAlchemy Core definitions of ml-batch's own tables (registry, runs, quarantine, monitoring).

The tables are created and changed only by the alembic migrations in `ml_batch/db/migrations/`; these
definitions are what the code queries with. They carry the placeholder schema `ml_batch`, which engines
from `ml_batch.db.engine` translate to the configured schema (ML_BATCH_SCHEMA).

The two must say the same thing: `tests/integration/test_tables.py` migrates a fresh schema to head and
compares it with these definitions: alembic's autogenerate comparison (columns, types, nullability, server
defaults, identities, indexes, foreign keys), and PostgreSQL's own report of what alembic does not compare
(each CHECK constraint's name and text, partial-index predicates, key names, ON DELETE). The migrations are
the truth for existing databases: a change goes into a new revision first, then here.

The value lists that CHECK constraints enforce live here, next to their constraints (`RUN_TYPES`,
`RUN_STATUSES`, `REPORT_KINDS`, ...): code that validates a value imports the list from here. A revision
never imports them: it spells out the values as they were when it was written.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

SCHEMA_PLACEHOLDER = "ml_batch"

# How a run was started (`runs.run_type`, CHECK `runs_run_type_known`, revisions 0010, 0011) and where it
# stands (`runs.status`, CHECK `runs_status_known`, revision 0002).
RUN_TYPES = ("scheduled", "manual", "backfill", "asset_triggered", "cli", "test", "reconcile")
RUN_STATUSES = ("running", "success", "failed", "dry_run")
# The path that scored a run (`runs.scoring_path`, revision 0016): the version's compiled library or scikit-learn.
SCORING_PATHS = ("sklearn", "compiled")
# Registry values (revisions 0001, 0003): how a version came to be, what it predicts, what the audit records.
MODEL_SOURCES = ("trained", "registered")
# The aliases the pipeline reads (`model_aliases.alias`): what the daily DAG scores and what is in shadow.
CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_TASKS = ("binary", "regression", "multiclass")  # multiclass: revision 0015
MODEL_EVENTS = ("registered", "promoted", "rollback", "alias_removed", "gate_decision", "verified", "verify_failed",
                "approval_requested", "approved", "approval_rejected")
# Alerts (revisions 0003, 0007, 0011, 0012, 0014, 0015), in the order the constraint lists them. An alert's state
# (revision 0012): a condition (`ml_batch.ops.alerts.CONDITION_KINDS`) is "open" until it clears, then
# "resolved"; every other kind is an "event", delivered each time it happens.
ALERT_SEVERITIES = ("info", "warning", "critical")
ALERT_KINDS = ("run_failure", "dataset_drift", "performance_floor", "gate_reject", "gate_promote", "rollback",
               "performance_estimate", "late_rows", "incomplete_day", "out_of_support", "late", "approval_requested",
               "unseen_class")
ALERT_STATES = ("open", "resolved", "event")
# Stored reports (revision 0009).
REPORT_KINDS = ("drift_report", "validation_result")

_JSON_EMPTY = sa.text("'{}'::jsonb")

metadata = sa.MetaData(schema=SCHEMA_PLACEHOLDER)


def _one_of(column: str, values: tuple[str, ...], name: str) -> sa.CheckConstraint:
    """The CHECK constraint `name`: `column` holds one of `values` (literals of this module, never input)."""
    return sa.CheckConstraint(f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")", name=name)

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
    sa.Column("params", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("train_start", sa.Date),
    sa.Column("train_end", sa.Date),
    sa.Column("holdout_start", sa.Date),
    sa.Column("holdout_end", sa.Date),
    sa.Column("n_train", sa.Integer),
    sa.Column("n_holdout", sa.Integer),
    sa.Column("metrics", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("code_version", sa.Text, nullable=False),
    sa.Column("spec_sha256", sa.CHAR(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("tags", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("reference_profile", JSONB),
    # The training window's rows scoring would quarantine, left out of training: count, reasons (0013).
    sa.Column("n_excluded", sa.Integer),
    sa.Column("exclusions", JSONB),
    # The Python and library versions it was fitted with, the ones `models verify` re-scored it in, and the
    # holdout rows and scores that verification re-scores (0013).
    sa.Column("environment", JSONB),
    sa.Column("verified_environments", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("holdout_sample", JSONB),
    # The PostgreSQL type of each source column it reads (key, event date, features) when it was trained or
    # registered, `{column: type}`; scoring names a column that changed type (0014).
    sa.Column("source_types", JSONB),
    # A multiclass version's class names in the order of its probabilities, and its labelled rows per class
    # (`{"train": {class: n}, "holdout": {class: n}}`); NULL for binary and regression versions (0015).
    sa.Column("classes", JSONB),
    sa.Column("class_counts", JSONB),
    # The estimator compiled to a shared library, signed like the artifact (same key), and what compiling found,
    # also when nothing was compiled (0016, `ml_batch.model.compiled`).
    sa.Column("compiled_library", BYTEA),
    sa.Column("compiled_hmac", sa.CHAR(64)),
    sa.Column("compiled", JSONB),
    sa.CheckConstraint("version > 0", name="model_versions_version_positive"),
    sa.CheckConstraint("artifact_sha256 ~ '^[0-9a-f]{64}$'", name="model_versions_sha256_hex"),
    _one_of("source", MODEL_SOURCES, "model_versions_source_known"),
    _one_of("task", MODEL_TASKS, "model_versions_task_known"),
    sa.CheckConstraint("(artifact_hmac IS NULL) = (artifact_key_id IS NULL)", name="model_versions_signed_with_key"),
    sa.CheckConstraint("(compiled_library IS NULL) = (compiled_hmac IS NULL)", name="model_versions_compiled_signed"),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_name", sa.Text, primary_key=True),
    sa.Column("alias", sa.Text, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("set_by", sa.Text, nullable=False),
    sa.Column("set_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    # The primary key (model_name, alias) is what guarantees at most one version per alias per model.
    sa.ForeignKeyConstraint(["model_name", "version"], [model_versions.c.model_name, model_versions.c.version],
                            name="model_aliases_version_fkey"),
    sa.CheckConstraint("alias ~ '^[a-z][a-z0-9_]{0,62}$'", name="model_aliases_alias_format"),
)

model_events = sa.Table(
    "model_events",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("alias", sa.Text),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    _one_of("event", MODEL_EVENTS, "model_events_event_known"),
    sa.Index("model_events_model_time", "model_name", "id"),
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
    sa.Column("stage_seconds", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # liveness (migration 0006, ml_batch.run.lifecycle)
    sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
    sa.Column("holder", sa.Text),
    sa.Column("single_process", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("cleaned_at", sa.DateTime(timezone=True)),
    sa.Column("spec_sha256", sa.CHAR(64)),  # the spec the run was planned with (migration 0008)
    # the day as a whole (migration 0011, ml_batch.run.completeness and ml_batch.run.reconcile)
    sa.Column("partial", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("day_check", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("key_digest", sa.Text),
    sa.Column("source_updated_at", sa.DateTime(timezone=True)),
    # a step failed on its data: the last step to end drops the run's objects (0014, ml_batch.run.lifecycle)
    sa.Column("data_failed_at", sa.DateTime(timezone=True)),
    # Which path scored the run: the version's compiled library or scikit-learn (0016, `SCORING_PATHS`).
    sa.Column("scoring_path", sa.Text),
    _one_of("run_type", RUN_TYPES, "runs_run_type_known"),
    _one_of("status", RUN_STATUSES, "runs_status_known"),
    sa.CheckConstraint("rows_extracted IS NULL OR rows_extracted = rows_scored + rows_quarantined",
                       name="runs_rows_add_up"),
    sa.CheckConstraint("scoring_path IS NULL OR scoring_path IN (" + ", ".join(f"'{p}'" for p in SCORING_PATHS) + ")",
                       name="runs_scoring_path_known"),
    sa.Index("runs_model_day", "model_name", "partition_date"),
    # The cleanup looks for unfinished runs of one model; finished runs are the vast majority (migration 0006).
    sa.Index("runs_unfinished", "model_name",
             postgresql_where=sa.text("status IN ('running', 'failed') AND cleaned_at IS NULL")),
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
    sa.Column("stage_seconds", JSONB, nullable=False, server_default=_JSON_EMPTY),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.ForeignKeyConstraint(["model_name", "run_id"], [runs.c.model_name, runs.c.run_id],
                            name="run_shards_run_fkey", ondelete="CASCADE"),
    sa.CheckConstraint("rows_extracted = rows_scored + rows_quarantined", name="run_shards_rows_add_up"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(always=True), primary_key=True),
    sa.Column("model_name", sa.Text, nullable=False),
    sa.Column("partition_date", sa.Date, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("shard", sa.Integer, nullable=False),
    sa.Column("entity_key", sa.Text),
    sa.Column("reasons", JSONB, nullable=False),
    sa.Column("row_data", JSONB, nullable=False),
    sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("quarantine_model_day", "model_name", "partition_date"),
    sa.Index("quarantine_run", "model_name", "run_id", "shard"),
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
    sa.ForeignKeyConstraint(["model_name", "run_id"], [runs.c.model_name, runs.c.run_id],
                            name="published_days_run_fkey", ondelete="CASCADE"),
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
    sa.Column("detail", JSONB, nullable=False, server_default=_JSON_EMPTY),
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
    sa.Column("detail", JSONB, nullable=False, server_default=_JSON_EMPTY),
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
    sa.Column("detail", JSONB, nullable=False, server_default=_JSON_EMPTY),
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
    # A multiclass challenger's predicted class and every class's probability (0015; NULL for other tasks).
    sa.Column("predicted_class", sa.Text),
    sa.Column("class_scores", JSONB),
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
    # Alert state (0012). `partition_date` is the latest day the alert is about, `first_day` the day it
    # opened; `occurrences` counts the checks that found the condition while it was open.
    sa.Column("subject", sa.Text),
    # 'event' by default: a writer that does not know alert state (an older worker during an upgrade) keeps
    # inserting one row per alert, outside the open/resolve protocol, as it always did.
    sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'event'")),
    sa.Column("first_day", sa.Date),
    sa.Column("occurrences", sa.Integer, nullable=False, server_default=sa.text("1")),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_day", sa.Date),
    _one_of("severity", ALERT_SEVERITIES, "alerts_severity_known"),
    _one_of("kind", ALERT_KINDS, "alerts_kind_known"),
    _one_of("state", ALERT_STATES, "alerts_state_known"),
    sa.Index("alerts_model_time", "model_name", "created_at"),
    # At most one open alert per model, kind and subject, even when two tasks raise it at once.
    sa.Index("alerts_one_open", "model_name", "kind", sa.text("coalesce(subject, '')"), unique=True,
             postgresql_where=sa.text("state = 'open'")),
)

# Drift reports (HTML) and GX validation results (JSON) for readers without the workers' disks, such as the
# UI plugin (migration 0009). `part` is a shard ("s0", ...) or '' for the whole day.
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
    _one_of("kind", REPORT_KINDS, "reports_kind_known"),
    sa.Index("reports_model_kind_day", "model_name", "kind", "partition_date"),
)

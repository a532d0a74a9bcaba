"""What the pages show, read with SQLAlchemy Core from ml-batch's tables (read-only, bounded).

Every query but `with_raw_rows` reads only what the UI role may (`ml_batch.ops.grants.grant_ui`: the
analyst's grants plus `reports`), so the pages work through a role granted by `ml-batch db grant-ui`.
`with_raw_rows` reads quarantined rows' `row_data` and full reasons, which that role may not: the app calls it
only for a user with edit access to the model's DAG, with the owner's engine.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ml_batch.db.catalog import table_exists
from ml_batch.db.tables import (
    drift_days,
    drift_results,
    model_aliases,
    model_events,
    model_versions,
    performance,
    published_days,
    quarantine,
    run_shards,
    runs,
)
from ml_batch.db.tables import reports as reports_table
from ml_batch.ops import reports
from ml_batch.ops.grants import HIDDEN_COLUMNS
from ml_batch.tasks import MULTICLASS
from ml_batch.validation.reasons import GOT

Row = dict[str, Any]

RUN_LIMIT = 60
EVENT_LIMIT = 100
QUARANTINE_DAYS = 14
EXAMPLES_PER_REASON = 3
DRIFT_DAYS = 60
PERFORMANCE_DAYS = 120
ALERT_LIMIT = 100
CLASS_MIX_DAYS = 60


def _rows(engine: sa.Engine, query: sa.Select[Any]) -> list[Row]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def models(engine: sa.Engine) -> list[Row]:
    """Every model with versions or runs: its champion, version count and latest run."""
    names = sa.union(sa.select(model_versions.c.model_name), sa.select(runs.c.model_name)).subquery("m")
    champion = (sa.select(model_aliases.c.version).where(model_aliases.c.model_name == names.c.model_name,
                                                         model_aliases.c.alias == "champion")
                .scalar_subquery())
    versions = (sa.select(sa.func.count()).where(model_versions.c.model_name == names.c.model_name)
                .scalar_subquery())
    latest = (sa.select(sa.func.max(runs.c.partition_date)).where(runs.c.model_name == names.c.model_name)
              .scalar_subquery())
    return _rows(engine, sa.select(names.c.model_name, champion.label("champion"), versions.label("versions"),
                                   latest.label("latest_day")).order_by(names.c.model_name))


def known_model(engine: sa.Engine, model: str) -> bool:
    return any(m["model_name"] == model for m in models(engine))


# What the registry page leaves out of `model_versions`: what the UI role may not read, and big JSON it never shows.
_VERSIONS_NOT_SHOWN = frozenset({*HIDDEN_COLUMNS[model_versions.name], "reference_profile", "feature_schema"})


def versions(engine: sa.Engine, model: str) -> list[Row]:
    cols = [c for c in model_versions.c if c.name not in _VERSIONS_NOT_SHOWN]
    return _rows(engine, sa.select(*cols).where(model_versions.c.model_name == model)
                 .order_by(model_versions.c.version.desc()))


def aliases(engine: sa.Engine, model: str) -> list[Row]:
    return _rows(engine, sa.select(model_aliases).where(model_aliases.c.model_name == model)
                 .order_by(model_aliases.c.alias))


def events(engine: sa.Engine, model: str, limit: int = EVENT_LIMIT) -> list[Row]:
    return _rows(engine, sa.select(model_events).where(model_events.c.model_name == model)
                 .order_by(model_events.c.id.desc()).limit(limit))


def recent_runs(engine: sa.Engine, model: str, limit: int = RUN_LIMIT) -> list[Row]:
    """The model's latest runs by day (newest day first, then the latest started): the `limit` newest days'."""
    return _rows(engine, sa.select(
        runs.c.partition_date, runs.c.run_id, runs.c.run_type, runs.c.status, runs.c.model_version, runs.c.shards,
        runs.c.rows_extracted, runs.c.rows_scored, runs.c.rows_quarantined, runs.c.score_mean,
        runs.c.stage_seconds, runs.c.started_at, runs.c.finished_at, runs.c.error, runs.c.dry_run, runs.c.partial,
        runs.c.day_check,
    ).where(runs.c.model_name == model).order_by(runs.c.partition_date.desc(), runs.c.started_at.desc())
                 .limit(limit))


def quarantine_reasons(engine: sa.Engine, model: str, days: int = QUARANTINE_DAYS) -> list[Row]:
    """Per day and reason (without the row's own value): the number of rows and a few example rows.

    The rows of each day's published run (`quarantine` joined to `published_days`, what the view
    `quarantine_published` holds, readable by the UI role). An example is its key, and its `reason` and
    `row_data` are None: `with_raw_rows` fills them in for a user who may see them.
    """
    q, p = quarantine.alias("q"), published_days.alias("p")
    published = q.join(p, sa.and_(p.c.model_name == q.c.model_name, p.c.partition_date == q.c.partition_date,
                                  p.c.run_id == q.c.run_id))
    reason = (sa.func.jsonb_array_elements_text(q.c.reasons).table_valued("value", with_ordinality="position")
              .render_derived("r"))
    kind = sa.func.split_part(reason.c.value, GOT, 1).label("reason")
    first = (sa.select(sa.func.max(q.c.partition_date)).select_from(published).where(q.c.model_name == model)
             .scalar_subquery())
    ranked = sa.select(
        q.c.partition_date, kind, q.c.entity_key, q.c.id, reason.c.position,
        sa.func.count().over(partition_by=[q.c.partition_date, kind]).label("rows"),
        sa.func.row_number().over(partition_by=[q.c.partition_date, kind], order_by=q.c.id).label("n"),
    ).select_from(published.join(reason, sa.true())).where(
        q.c.model_name == model, q.c.partition_date > first - days).subquery("ranked")
    found = _rows(engine, sa.select(ranked).where(ranked.c.n <= EXAMPLES_PER_REASON)
                  .order_by(ranked.c.partition_date.desc(), ranked.c.rows.desc(), ranked.c.reason, ranked.c.n))
    grouped: dict[tuple[dt.date, str], Row] = {}
    for row in found:
        entry = grouped.setdefault((row["partition_date"], row["reason"]), {
            "partition_date": row["partition_date"], "reason": row["reason"], "rows": row["rows"], "examples": []})
        entry["examples"].append({"entity_key": row["entity_key"], "id": row["id"], "position": row["position"],
                                  "reason": None, "row_data": None})
    return list(grouped.values())


def with_raw_rows(engine: sa.Engine, reasons: list[Row]) -> list[Row]:
    """`quarantine_reasons`' rows with each example's full reason (with the row's value) and `row_data`, read
    through `engine`: the owner's, since the UI role may not read `row_data`. An example whose row is gone
    since (retention) keeps None."""
    ids = sorted({e["id"] for entry in reasons for e in entry["examples"]})
    found = {r["id"]: r for r in _rows(engine, sa.select(quarantine.c.id, quarantine.c.reasons, quarantine.c.row_data)
                                       .where(quarantine.c.id.in_(ids)))} if ids else {}

    def raw(example: Row) -> Row:
        row = found.get(example["id"])
        if row is None:
            return example
        return {**example, "reason": row["reasons"][example["position"] - 1], "row_data": row["row_data"]}

    return [{**entry, "examples": [raw(e) for e in entry["examples"]]} for entry in reasons]


def drift_history(engine: sa.Engine, model: str, days: int = DRIFT_DAYS) -> tuple[list[Row], list[Row]]:
    """(days, feature statistics) of the last `days` checked days, newest first; days say if a report is stored."""
    stored = sa.exists().where(reports_table.c.model_name == drift_days.c.model_name,
                               reports_table.c.partition_date == drift_days.c.partition_date,
                               reports_table.c.kind == reports.DRIFT_REPORT)
    day_rows = _rows(engine, sa.select(drift_days, stored.label("has_report"))
                     .where(drift_days.c.model_name == model)
                     .order_by(drift_days.c.partition_date.desc()).limit(days))
    if not day_rows:
        return [], []
    oldest = day_rows[-1]["partition_date"]
    features = _rows(engine, sa.select(drift_results).where(drift_results.c.model_name == model,
                                                            drift_results.c.partition_date >= oldest)
                     .order_by(drift_results.c.partition_date.desc(), drift_results.c.feature, drift_results.c.test))
    return day_rows, features


def performance_history(engine: sa.Engine, model: str, days: int = PERFORMANCE_DAYS) -> list[Row]:
    """Realized and estimated metrics per version and day, oldest first."""
    last = sa.select(sa.func.max(performance.c.partition_date)).where(
        performance.c.model_name == model).scalar_subquery()
    return _rows(engine, sa.select(performance).where(performance.c.model_name == model,
                                                      performance.c.partition_date > last - days)
                 .order_by(performance.c.partition_date, performance.c.model_version, performance.c.metric))


def validation_results(engine: sa.Engine, model: str, limit: int = RUN_LIMIT) -> list[Row]:
    """The stored GX results (one per run and shard), newest first, without their content; each with its run's
    `run_status` and its shard's `shard_quarantined` rows (None: no such run, or the shard did not finish)."""
    r = reports_table
    shard = sa.literal("s").concat(sa.cast(run_shards.c.shard, sa.Text))
    joined = r.outerjoin(runs, sa.and_(runs.c.model_name == r.c.model_name, runs.c.run_id == r.c.run_id)).outerjoin(
        run_shards, sa.and_(run_shards.c.model_name == r.c.model_name, run_shards.c.run_id == r.c.run_id,
                            shard == r.c.part))
    return _rows(engine, sa.select(r.c.partition_date, r.c.run_id, r.c.part, r.c.created_at,
                                   runs.c.status.label("run_status"),
                                   run_shards.c.rows_quarantined.label("shard_quarantined"))
                 .select_from(joined).where(r.c.model_name == model, r.c.kind == reports.VALIDATION_RESULT)
                 .order_by(r.c.created_at.desc(), r.c.part).limit(limit))


def is_multiclass(engine: sa.Engine, model: str) -> bool:
    """Whether `model` has a multiclass version (its pages then show the class mix)."""
    with engine.connect() as conn:
        # the key columns only: the UI role is granted `model_versions` column by column (`grant_ui`)
        return bool(conn.execute(sa.select(sa.select(model_versions.c.version).where(
            model_versions.c.model_name == model, model_versions.c.task == MULTICLASS).exists())).scalar())


def class_mix(engine: sa.Engine, table: str, days: int = CLASS_MIX_DAYS) -> list[Row]:
    """The published predictions of a multiclass model's `table` (the spec's `predictions.table`) per day and
    predicted class over its last `days` scored days, oldest first: `partition_date`, `predicted_label`,
    `rows` and `share` (of the day's rows).

    The days are bounded on `partition_date`, the partition key, so only those days' partitions are read.
    No rows (no day published yet) when the table does not exist.
    """
    with engine.connect() as conn:
        if not table_exists(conn, table):
            return []
    schema, _, name = table.rpartition(".")
    predictions = sa.table(name, sa.column("partition_date", sa.Date), sa.column("predicted_label", sa.Text),
                           schema=schema or None)
    last = sa.select(sa.func.max(predictions.c.partition_date)).scalar_subquery()
    rows = sa.func.count()
    share = sa.cast(rows, sa.Float) / sa.func.sum(rows).over(partition_by=predictions.c.partition_date)
    return _rows(engine, sa.select(predictions.c.partition_date, predictions.c.predicted_label, rows.label("rows"),
                                   share.label("share"))
                 .where(predictions.c.partition_date > last - days)
                 .group_by(predictions.c.partition_date, predictions.c.predicted_label)
                 .order_by(predictions.c.partition_date, predictions.c.predicted_label))

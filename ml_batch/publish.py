"""Write-audit-publish of a day's predictions.

- **Write**: shards COPY their predictions into the run's staging table: only (key, score, label), the
  columns that differ from row to row. Publishing stamps the columns every row of the run shares (day,
  model, version, artifact hash, run id, scored_at) as PostgreSQL fast defaults, which cost no write per
  row, and adds the primary key (partition_date, key): the table is then shaped like one partition.
- **Audit**: the staging table must hold exactly the scored row count, no duplicate key, no null/NaN
  score, only day D and only the pinned version.
- **Publish**: in one transaction, under a per-(model, day) advisory lock, the day's old partition (if any)
  is detached and dropped and the staging table is renamed and attached as the new partition. Readers see
  the old day or the new day, never a mix or a gap; re-running a day replaces it, so there is always exactly
  one copy. Attaching is instant (a CHECK constraint proves the bound, so PostgreSQL skips its scan) and
  the rows are never copied a second time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

import sqlalchemy as sa

from ml_batch.errors import PublishError
from ml_batch.sources import selectable
from ml_batch.spec import Spec
from ml_batch.sqlfiles import render, render_regclass

logger = logging.getLogger(__name__)


def partition_name(spec: Spec, day: dt.date) -> str:
    return f"{spec.predictions.table_name}_p{day:%Y%m%d}"


def qualified(spec: Spec, name: str) -> str:
    schema = spec.predictions.schema_name
    return f"{schema}.{name}" if schema else name


def staging_table(spec: Spec, run_id: str) -> str:
    """The run's staging table (schema-qualified); a hash keeps any run id a valid, short identifier."""
    digest = hashlib.sha1(f"{spec.name}/{run_id}".encode()).hexdigest()[:10]
    return qualified(spec, f"{spec.predictions.table_name}__s_{digest}")


def source_key_type(conn: sa.Connection, spec: Spec) -> str:
    """PostgreSQL's own name of the source key's type (e.g. `bigint`), for the predictions table."""
    src = selectable(spec.source, [spec.source.key], "src")
    stmt = sa.select(src.c[spec.source.key]).limit(0)
    cursor = conn.exec_driver_sql(str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})))
    type_oid = cursor.cursor.description[0][1]
    cursor.close()
    return str(conn.execute(sa.text("SELECT format_type(:oid, NULL)"), {"oid": type_oid}).scalar_one())


def ensure_predictions_table(conn: sa.Connection, spec: Spec) -> None:
    """Create the model's partitioned predictions table, its index and `_latest` view if missing."""
    table = spec.predictions.table
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"ml_batch.ddl:{table}"})
    if spec.predictions.schema_name:
        conn.execute(sa.schema.CreateSchema(spec.predictions.schema_name, if_not_exists=True))
    key_type = source_key_type(conn, spec)
    key = spec.source.key
    conn.execute(render("create_predictions_table", table=table, key=key, key_type=key_type))
    conn.execute(render("create_predictions_key_index", table=table, key=key,
                        index=f"{spec.predictions.table_name}_key_idx"))
    conn.execute(render("create_predictions_latest_view", table=table, key=key,
                        view=qualified(spec, f"{spec.predictions.table_name}_latest")))


def create_staging(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """A fresh, empty staging table for a run (a leftover from an earlier attempt is dropped)."""
    conn.execute(render("drop_table", table=staging))
    # the key's type as the predictions table has it (ATTACH PARTITION needs the same type)
    key_type = conn.execute(render("select_column_type"), {
        "table": render_regclass(spec.predictions.table), "column": spec.source.key,
    }).scalar_one_or_none()
    if key_type is None:
        raise PublishError(f"{spec.predictions.table} has no column {spec.source.key!r}: it was not created by "
                           "ml-batch for this spec (or the spec's key changed); rename or drop it")
    conn.execute(render("create_staging_table", staging=staging, key=spec.source.key, key_type=key_type))


def stamp_staging(conn: sa.Connection, staging: str, *, day: dt.date, model: str, version: int,
                  artifact_sha256: str, run_id: str) -> None:
    """Add the run's shared columns to the staged rows (catalog-only: no row is rewritten)."""
    conn.execute(render("set_stamp_values"), {"model_name": model, "model_version": str(version),
                                              "artifact_sha256": artifact_sha256, "run_id": run_id})
    conn.execute(render("stamp_staging", staging=staging, dates={"day": day}))
    conn.execute(render("unstamp_staging_defaults", staging=staging))


def drop_staging(conn: sa.Connection, staging: str) -> None:
    conn.execute(render("drop_table", table=staging))


@dataclass(frozen=True)
class StagingAudit:
    row_count: int
    bad_scores: int
    wrong_day: int
    wrong_version: int
    score_mean: float | None


def audit_staging(conn: sa.Connection, spec: Spec, staging: str, *, day: dt.date, version: int,
                  expected_rows: int) -> StagingAudit:
    """Check the staging table before publishing; any violation raises PublishError naming it."""
    try:
        with conn.begin_nested():
            conn.execute(render("add_staging_primary_key", staging=staging, key=spec.source.key))
    except sa.exc.IntegrityError as exc:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: duplicate keys "
                           f"({str(exc.orig).strip().splitlines()[-1]}); nothing was published") from exc
    row = conn.execute(render("check_staging", staging=staging), {"day": day, "version": version}).mappings().one()
    audit = StagingAudit(
        row_count=int(row["row_count"]), bad_scores=int(row["bad_scores"]),
        wrong_day=int(row["wrong_day"]), wrong_version=int(row["wrong_version"]),
        score_mean=float(row["score_mean"]) if row["score_mean"] is not None else None,
    )
    problems = []
    if audit.row_count != expected_rows:
        problems.append(f"{audit.row_count} rows staged, expected {expected_rows} scored rows")
    if audit.bad_scores:
        problems.append(f"{audit.bad_scores} null or NaN scores")
    if audit.wrong_day:
        problems.append(f"{audit.wrong_day} rows of another day than {day}")
    if audit.wrong_version:
        problems.append(f"{audit.wrong_version} rows of another version than {version}")
    if problems:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: {'; '.join(problems)}; "
                           "nothing was published")
    return audit


def swap_in(conn: sa.Connection, spec: Spec, staging: str, day: dt.date) -> None:
    """Replace day `day` of the predictions table by the staging table (caller holds the transaction)."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                 {"k": f"ml_batch.publish:{spec.predictions.table}:{day.isoformat()}"})
    next_day = day + dt.timedelta(days=1)
    bounds = {"day": day, "next_day": next_day}
    constraint = f"{spec.predictions.table_name}_day_check"
    conn.execute(render("constrain_staging_to_day", dates=bounds, staging=staging, constraint=constraint))
    name = partition_name(spec, day)
    partition = qualified(spec, name)
    exists = conn.execute(sa.text("SELECT to_regclass(:t) IS NOT NULL"),
                          {"t": render_regclass(partition)}).scalar_one()
    if exists:
        conn.execute(render("detach_partition", table=spec.predictions.table, partition=partition))
        conn.execute(render("drop_table", table=partition))
    conn.execute(render("rename_staging_to_partition", staging=staging, partition_name=name))
    conn.execute(render("attach_partition", dates=bounds, table=spec.predictions.table, partition=partition))
    conn.execute(render("drop_staging_constraint", partition=partition, constraint=constraint))
    logger.info("published %s day %s as partition %s", spec.predictions.table, day, partition)


def analyze_partition(conn: sa.Connection, spec: Spec, day: dt.date) -> None:
    """Planner statistics for the day's new partition (run after the publishing transaction)."""
    conn.execute(render("analyze_table", table=qualified(spec, partition_name(spec, day))))

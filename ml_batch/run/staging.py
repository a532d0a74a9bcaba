"""The run's staging table: write, stamp, audit; what publish swaps in as the day (`ml_batch.run.predictions`).

- **Write**: shards COPY their predictions into the run's staging table: only (key, score, label), the
  columns that differ from row to row.
- **Stamp**: publishing adds the columns every row of the run shares (day, model, version, artifact hash,
  run id, scored_at) as PostgreSQL fast defaults, which cost no write per row, and the primary key
  (partition_date, key): the table is then shaped like one partition.
- **Audit**: the staging table must hold exactly the scored row count, no duplicate key, no null, NaN or
  infinite score (nor, for a binary or multiclass model, one outside [0, 1]), only day D and only the pinned
  version. A multiclass model's rows must each hold every class of the pinned version in `class_scores`, and
  no other, each a probability in [0, 1], summing to 1 within `PROBABILITY_TOLERANCE`, with `predicted_label`
  a class of maximal probability and `score` its probability. Then the table gets every index of the
  predictions table and its planner statistics, before any lock on the predictions table is asked for.

A multiclass model's staging (and predictions) table has a text `predicted_label` and a jsonb `class_scores`
(`create_multiclass_*.sql`); the staging table is created with the columns of the model's task and must match
the predictions table's (ATTACH PARTITION needs the same types), or the plan fails naming the difference.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from ml_batch.db.catalog import column_type
from ml_batch.db.sqlfiles import render
from ml_batch.errors import PublishError, first_line
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)


def create_staging(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """A fresh, empty staging table for a run (a leftover from an earlier attempt is dropped)."""
    conn.execute(render("drop_table", table=staging))
    # the key's type as the predictions table has it (ATTACH PARTITION needs the same type)
    key_type = column_type(conn, spec.predictions.table, spec.source.key)
    if key_type is None:
        raise PublishError(f"{spec.predictions.table} has no column {spec.source.key!r}: it was not created by "
                           "ml-batch for this spec (or the spec's key changed); rename or drop it")
    conn.execute(render(_STAGING_DDL.get(spec.model.task, "create_staging_table"), staging=staging,
                        key=spec.source.key, key_type=key_type))
    _require_same_columns(conn, spec, staging)


# The tables of a task whose predictions differ from a binary or regression model's (`create_staging_table`).
_STAGING_DDL = {"multiclass": "create_multiclass_staging_table"}
# The staged columns whose type depends on the model's task.
_TASK_COLUMNS = ("predicted_label", "class_scores")
#: How far a multiclass row's probabilities may sum from 1 (float64 rounding over k classes is ~1e-15).
PROBABILITY_TOLERANCE = 1e-6


def _require_same_columns(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """PublishError unless the staging table's task columns have the predictions table's types."""
    table = spec.predictions.table
    for column in _TASK_COLUMNS:
        staged, published = column_type(conn, staging, column), column_type(conn, table, column)
        if staged != published:
            raise PublishError(
                f"model {spec.name!r} (task {spec.model.task}): {table} has column {column!r} "
                f"{'of type ' + published if published else 'missing'}, a {spec.model.task} model stages it "
                f"{'as ' + staged if staged else 'not at all'}: the table was created for a model of another "
                "task; give this spec its own predictions.table, or rename or drop the old one"
            )


def stamp_staging(conn: sa.Connection, staging: str, *, day: dt.date, model: str, version: int,
                  artifact_sha256: str, run_id: str) -> None:
    """Add the run's shared columns to the staged rows (catalog-only: no row is rewritten)."""
    conn.execute(render("set_stamp_values"), {"model_name": model, "model_version": str(version),
                                              "artifact_sha256": artifact_sha256, "run_id": run_id})
    conn.execute(render("stamp_staging", staging=staging, dates={"day": day}))
    conn.execute(render("unstamp_staging_defaults", staging=staging))


def drop_staging(conn: sa.Connection, staging: str) -> None:
    """Drop the staging table (nothing when it is gone)."""
    conn.execute(render("drop_table", table=staging))


@dataclass(frozen=True)
class StagingAudit:
    row_count: int
    bad_scores: int
    positive_infinite: int
    negative_infinite: int
    outside_unit: int
    wrong_day: int
    wrong_version: int
    score_mean: float | None


@dataclass(frozen=True)
class ClassAudit:
    """What the multiclass part of the audit counted (each bad row once, for the first rule it breaks)."""

    wrong_classes: int
    bad_probabilities: int
    bad_sums: int
    not_argmax: int
    wrong_score: int

    def problems(self, classes: Sequence[str]) -> list[str]:
        """The violations, each naming its count."""
        found = [
            (self.wrong_classes, f"rows whose class_scores are not exactly the {len(classes)} classes "
                                 f"{list(classes)}"),
            (self.bad_probabilities, "rows with a NaN, infinite or out-of-[0, 1] class probability"),
            (self.bad_sums, f"rows whose class probabilities do not sum to 1 (within {PROBABILITY_TOLERANCE:g})"),
            (self.not_argmax, "rows whose predicted_label is not a class of maximal probability"),
            (self.wrong_score, "rows whose score is not the probability of their predicted_label"),
        ]
        return [f"{count} {what}" for count, what in found if count]


def audit_staging(conn: sa.Connection, spec: Spec, staging: str, *, day: dt.date, version: int,
                  expected_rows: int, classes: Sequence[str] | None = None) -> StagingAudit:
    """Check the staging table before publishing; any violation raises PublishError naming it.

    `classes` are the pinned version's class names (`model_versions.classes`), required for a multiclass model.
    """
    try:
        with conn.begin_nested():
            conn.execute(render("add_staging_primary_key", staging=staging, key=spec.source.key))
    except sa.exc.IntegrityError as exc:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: duplicate keys "
                           f"({_detail(exc)}); nothing was published") from exc
    row = conn.execute(render("check_staging", staging=staging), {"day": day, "version": version}).mappings().one()
    audit = StagingAudit(
        row_count=int(row["row_count"]), bad_scores=int(row["bad_scores"]),
        positive_infinite=int(row["positive_infinite"]), negative_infinite=int(row["negative_infinite"]),
        outside_unit=int(row["outside_unit"]), wrong_day=int(row["wrong_day"]),
        wrong_version=int(row["wrong_version"]),
        score_mean=float(row["score_mean"]) if row["score_mean"] is not None else None,
    )
    problems = []
    if audit.row_count != expected_rows:
        problems.append(f"{audit.row_count} rows staged, expected {expected_rows} scored rows")
    if audit.bad_scores:
        problems.append(f"{audit.bad_scores} null or NaN scores")
    if audit.positive_infinite or audit.negative_infinite:
        problems.append(f"{audit.positive_infinite + audit.negative_infinite} infinite scores "
                        f"({audit.positive_infinite} +Infinity, {audit.negative_infinite} -Infinity)")
    if spec.model.task in ("binary", "multiclass") and audit.outside_unit:
        problems.append(f"{audit.outside_unit} scores outside [0, 1] for a {spec.model.task} model")
    if spec.model.task == "multiclass":
        problems += _audit_classes(conn, spec, staging, classes).problems(classes or ())
    if audit.wrong_day:
        problems.append(f"{audit.wrong_day} rows of another day than {day}")
    if audit.wrong_version:
        problems.append(f"{audit.wrong_version} rows of another version than {version}")
    if problems:
        raise PublishError(f"model {spec.name!r} day {day}: staging audit failed: {'; '.join(problems)}; "
                           "nothing was published")
    return audit


def index_and_analyze_staging(conn: sa.Connection, spec: Spec, staging: str) -> None:
    """Give the (stamped, audited) staging table the predictions table's key index and planner statistics.

    With its primary key from the audit it then has every index of the parent, so ATTACH PARTITION adopts
    them instead of building one under the table's exclusive lock; and ANALYZE runs here, not after the
    swap, so nothing is left to fail once the day is published (statistics stay with the table).
    """
    conn.execute(render("create_staging_key_index", staging=staging, key=spec.source.key))
    conn.execute(render("analyze_table", table=staging))


def _audit_classes(conn: sa.Connection, spec: Spec, staging: str, classes: Sequence[str] | None) -> ClassAudit:
    """The multiclass rules of the audit (`check_multiclass_staging.sql`), against the pinned version's classes."""
    if not classes:
        raise PublishError(f"model {spec.name!r}: the pinned version records no classes (model_versions.classes), "
                           "so its multiclass predictions cannot be audited; nothing was published")
    row = conn.execute(render("check_multiclass_staging", staging=staging),
                       {"classes": list(classes), "tolerance": PROBABILITY_TOLERANCE}).mappings().one()
    return ClassAudit(**{name: int(row[name]) for name in ClassAudit.__dataclass_fields__})


def _detail(exc: sa.exc.IntegrityError) -> str:
    """PostgreSQL's DETAIL of a unique violation (which key, which values), else its first line."""
    detail = getattr(getattr(exc.orig, "diag", None), "message_detail", None)
    return f"DETAIL:  {detail}" if detail else first_line(exc)

"""The read-only roles: the analyst's (`ml-batch db grant-analyst ROLE`) and the UI's (`ml-batch db grant-ui ROLE`).

An analyst reads predictions and monitoring, never model artifacts nor raw source rows:

- SELECT on every model's predictions table and its `_latest` view (from the specs), and on ml-batch's
  runs, run_shards, published_days, drift_results, drift_days, performance, shadow_predictions,
  shadow_comparisons, alerts, model_aliases and model_events;
- `model_versions` column by column, **without** `artifact` (the pickled model) and its signature columns,
  nor `holdout_sample` (source rows of the holdout, which `models verify` re-scores), nor `compiled_library`
  (the estimator as native code) and its signature; a migration that adds a column grants it to the roles
  that hold these column grants (revisions 0015, 0016);
- `quarantine` column by column, **without** `row_data` (the raw source row). The view
  `quarantine_published` is not granted: a view reads with its owner's rights, so it would hand out
  `row_data`; join `quarantine` to `published_days` instead (docs/analysts.md);
- USAGE on the schemas of those tables; nothing else (no INSERT/UPDATE/DELETE/TRUNCATE, no DDL).

Granting is idempotent: the two column-granted tables have their table-level privileges revoked first, so
running it again (or after someone granted more by hand) leaves exactly the set above. A model added later
needs the command run again. The role must exist: creating roles and their passwords is the DBA's job.

The UI role (`grant_ui`), the one ml-batch's pages read through (the Airflow connection `ml_batch_ui`),
gets exactly the analyst's grants plus SELECT on `reports`: the pages serve the stored drift reports and GX
validation results. So it can read everything an analyst can, and the stored GX results with their failing
values (the app strips them for viewers, `ml_batch.ui.app.without_failing_values`); it cannot read
`model_versions.artifact*` nor `holdout_sample`, nor `quarantine.row_data`: an editor's raw quarantined
rows are read through the owner's engine (`ml_batch.ui.app.create_app`'s `raw_engine_factory`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from ml_batch.db import tables
from ml_batch.db.catalog import table_exists
from ml_batch.db.sqlfiles import render, render_regclass
from ml_batch.errors import MlBatchError
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

_ROLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

READABLE_TABLES = (tables.runs, tables.run_shards, tables.published_days, tables.drift_results, tables.drift_days,
                   tables.performance, tables.shadow_predictions, tables.shadow_comparisons, tables.alerts,
                   tables.model_aliases, tables.model_events)
# what the UI role reads besides (`grant_ui`): the stored drift reports and GX results the pages serve
UI_TABLES = (tables.reports,)
# table -> the columns an analyst must never read
HIDDEN_COLUMNS = {
    tables.model_versions.name: ("artifact", "artifact_hmac", "artifact_key_id", "holdout_sample", "compiled_library",
                                 "compiled_hmac"),
    tables.quarantine.name: ("row_data",),
}


class GrantError(MlBatchError):
    """The analyst or UI role cannot be granted (it does not exist, or its name is not an identifier)."""

    deterministic = True


@dataclass
class AnalystGrants:
    """What was granted to `role`."""

    role: str
    schemas: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    columns: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # predictions tables not created yet

    def as_dict(self) -> dict[str, object]:
        return {"role": self.role, "schemas": self.schemas, "tables": self.tables, "columns": self.columns,
                "skipped": self.skipped}


def grant_analyst(engine: sa.Engine, schema: str, specs: Iterable[Spec], role: str) -> AnalystGrants:
    """Grant `role` read access to predictions and monitoring in `schema` (see the module docstring)."""
    return _grant(engine, schema, specs, role, READABLE_TABLES, "grant-analyst")


def grant_ui(engine: sa.Engine, schema: str, specs: Iterable[Spec], role: str) -> AnalystGrants:
    """Grant `role` what ml-batch's pages read: the analyst's grants and SELECT on `reports` (module docstring)."""
    return _grant(engine, schema, specs, role, READABLE_TABLES + UI_TABLES, "grant-ui")


def _grant(engine: sa.Engine, schema: str, specs: Iterable[Spec], role: str, readable: tuple[sa.Table, ...],
           command: str) -> AnalystGrants:
    """The analyst's grants with `readable` as the tables granted whole, in one transaction."""
    result = AnalystGrants(role)
    with engine.begin() as conn:
        if not _ROLE_RE.match(role):
            raise GrantError(f"role {role!r} is not a valid role name: expected [A-Za-z_][A-Za-z0-9_]*, at most "
                             "63 characters")
        if not conn.execute(render("select_role_exists"), {"role": role}).scalar_one():
            raise GrantError(f"role {role!r} does not exist: create it first (e.g. CREATE ROLE {role} LOGIN "
                             f"PASSWORD '...'), then run {command} again")
        _usage(conn, result, schema)
        for table in readable:
            _select(conn, result, f"{schema}.{table.name}")
        for name, hidden in HIDDEN_COLUMNS.items():
            _select_columns(conn, result, f"{schema}.{name}", hidden)
        for spec in specs:
            predictions = spec.predictions.table
            latest = spec.predictions.latest_view
            if not table_exists(conn, predictions):
                result.skipped.append(predictions)
                continue
            _usage(conn, result, spec.predictions.schema_name or "public")
            _select(conn, result, predictions)
            _select(conn, result, latest)
    logger.info("granted %s read access to %d tables and views in %s", role, len(result.tables),
                ", ".join(result.schemas))
    return result


def _usage(conn: sa.Connection, result: AnalystGrants, schema: str) -> None:
    if schema not in result.schemas:
        conn.execute(render("grant_schema_usage", schema=schema, role=result.role))
        result.schemas.append(schema)


def _select(conn: sa.Connection, result: AnalystGrants, table: str) -> None:
    conn.execute(render("grant_select", table=table, role=result.role))
    result.tables.append(table)


def _select_columns(conn: sa.Connection, result: AnalystGrants, table: str, hidden: tuple[str, ...]) -> None:
    conn.execute(render("revoke_all", table=table, role=result.role))
    columns = conn.execute(render("select_table_columns"), {"table": render_regclass(table)}).scalars().all()
    granted = [str(c) for c in columns if c not in hidden]
    for column in granted:
        conn.execute(render("grant_select_column", column=column, table=table, role=result.role))
    result.columns[table] = granted

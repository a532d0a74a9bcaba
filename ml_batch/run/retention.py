"""Retention: `ml-batch prune --model M --keep-days N [--dry-run]`, and the sweep of what killed runs left.

Everything of model M about a day before the cutoff (today - N days) goes:

- **prediction partitions** `<table>_pYYYYMMDD`: detached and dropped one day per transaction, under the
  day's publish advisory lock and the publish's lock-timeout rule (`ml_batch.db.locks.SwapLocking`: each attempt
  waits at most `timeout_s` for the exclusive lock, so readers never queue behind it for long), with the
  day's `published_days` row;
- rows of `quarantine`, `shadow_predictions`, `shadow_comparisons`, `drift_results`, `drift_days`,
  `alerts` (by day, or by creation date when an alert has no day), `reports` (when migration 0009 made it),
  and the finished runs (`runs`, `run_shards`) of those days. A run still `running` is never deleted.
  Realized `performance` and the registry are kept: they are small and they are the model's history;
- **report files** under the home folder: drift HTML `drift/<model>/YYYY-MM-DD.html` and GX results
  `validation/<model>/YYYY-MM-DD/`.

Then **leftovers of killed runs**: first `lifecycle.cleanup_dead_runs` (its rule decides which runs are
dead), then a sweep of the staging tables `<table>__s_*`, GX views `ml_batch_validate_*` and day snapshots
`ml_batch_day_*` of runs that are provably over: finished (`success` or `dry_run`, `runs.FINISHED`) or already
cleaned up, taken under the run's exclusive lock by `ml_batch.db.locks.when_free`, so a retry starting meanwhile
is never swept and an object in use is left for the next prune; staging tables of no run at all (their run's
row is gone) go too. A `running` run, and a `failed` run the cleanup did not find dead (Airflow may still
retry it), keep theirs. Last, the validation views of killed trainings (`validity.sweep_leftover_views`: in
ml-batch's schema, whichever model's training left them).

`dry_run=True` lists the same things and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ml_batch.db import locks
from ml_batch.db.catalog import table_exists
from ml_batch.db.locks import DEFAULT_LOCKING, SwapLocking
from ml_batch.db.sqlfiles import render, render_regclass
from ml_batch.db.tables import (
    alerts,
    drift_days,
    drift_results,
    quarantine,
    run_shards,
    runs,
    shadow_comparisons,
    shadow_predictions,
)
from ml_batch.model.validity import sweep_leftover_views
from ml_batch.run import lifecycle
from ml_batch.run.names import SNAPSHOT_PREFIX, ObjectKind, RunObject, run_objects, staging_prefix
from ml_batch.run.predictions import drop_partition
from ml_batch.run.runs import FINISHED, RUNNING
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)


@dataclass
class PruneReport:
    """What a prune removed (or, in a dry run, would remove)."""

    model: str
    cutoff: dt.date
    dry_run: bool
    partitions: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    dead_runs: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    kept_leftovers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "cutoff": self.cutoff.isoformat(), "dry_run": self.dry_run,
                "partitions": self.partitions, "rows": self.rows, "files": self.files, "dead_runs": self.dead_runs,
                "leftovers": self.leftovers, "kept_leftovers": self.kept_leftovers}


def cutoff_day(keep_days: int, today: dt.date) -> dt.date:
    """The first day kept: days before it are pruned."""
    if keep_days < 1:
        raise ValueError(f"keep_days={keep_days}: expected at least 1 (the day being scored is always kept)")
    return today - dt.timedelta(days=keep_days)


def prune(engine: sa.Engine, spec: Spec, *, keep_days: int, home: Path, schema: str, today: dt.date | None = None,
          dry_run: bool = False, locking: SwapLocking = DEFAULT_LOCKING) -> PruneReport:
    """Prune model `spec` to its last `keep_days` days and sweep its runs' leftovers (module docstring)."""
    cutoff = cutoff_day(keep_days, today or dt.datetime.now(dt.UTC).date())
    report = PruneReport(spec.name, cutoff, dry_run)
    if not dry_run:
        report.dead_runs = [f"{r.run_id} ({r.day})" for r in lifecycle.cleanup_dead_runs(engine, spec)]
    _sweep_leftovers(engine, spec, report)
    report.leftovers += [f"{view} (a killed training's validation view)"
                         for view in sweep_leftover_views(engine, dry_run=dry_run)]
    for day, partition in _old_partitions(engine, spec, cutoff):
        report.partitions.append(partition)
        if not dry_run:
            with engine.begin() as conn:
                drop_partition(conn, spec, day, locking)
            logger.info("pruned partition %s of %s (day %s)", partition, spec.name, day)
    report.rows = _prune_rows(engine, spec, schema, cutoff, dry_run)
    report.files = [str(path) for path in _old_files(home, spec.name, cutoff)]
    if not dry_run:
        for path in map(Path, report.files):
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    logger.info("pruned %s before %s%s: %d partitions, %s rows, %d files, %d leftovers", spec.name, cutoff,
                " (dry run)" if dry_run else "", len(report.partitions), sum(report.rows.values()),
                len(report.files), len(report.leftovers))
    return report


# -- prediction partitions -------------------------------------------------------------------------------
def _old_partitions(engine: sa.Engine, spec: Spec, cutoff: dt.date) -> list[tuple[dt.date, str]]:
    pattern = re.compile(re.escape(spec.predictions.table_name) + r"_p(\d{8})$")
    with engine.connect() as conn:
        if not table_exists(conn, spec.predictions.table):
            return []
        names = conn.execute(render("select_partitions"),
                             {"table": render_regclass(spec.predictions.table)}).scalars().all()
    found = []
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        day = dt.datetime.strptime(match.group(1), "%Y%m%d").date()
        if day < cutoff:
            found.append((day, spec.predictions.qualified(name)))
    return found


# -- rows of ml-batch's tables ---------------------------------------------------------------------------
def _prune_rows(engine: sa.Engine, spec: Spec, schema: str, cutoff: dt.date, dry_run: bool) -> dict[str, int]:
    old_runs = sa.select(runs.c.run_id).where(runs.c.model_name == spec.name, runs.c.partition_date < cutoff,
                                              runs.c.status != RUNNING)
    alert_day = sa.func.coalesce(alerts.c.partition_date, sa.cast(alerts.c.created_at, sa.Date))
    targets: list[tuple[sa.Table, list[sa.ColumnElement[bool]]]] = [
        (quarantine, [quarantine.c.model_name == spec.name, quarantine.c.partition_date < cutoff]),
        (shadow_predictions, [shadow_predictions.c.model_name == spec.name,
                              shadow_predictions.c.partition_date < cutoff]),
        (shadow_comparisons, [shadow_comparisons.c.model_name == spec.name,
                              shadow_comparisons.c.partition_date < cutoff]),
        (drift_results, [drift_results.c.model_name == spec.name, drift_results.c.partition_date < cutoff]),
        (drift_days, [drift_days.c.model_name == spec.name, drift_days.c.partition_date < cutoff]),
        (alerts, [alerts.c.model_name == spec.name, alert_day < cutoff]),
        (run_shards, [run_shards.c.model_name == spec.name, run_shards.c.run_id.in_(old_runs)]),
        (runs, [runs.c.model_name == spec.name, runs.c.partition_date < cutoff, runs.c.status != RUNNING]),
    ]
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        for table, where in targets:
            if dry_run:
                counts[table.name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)
                                                      .where(*where)).scalar_one())
            else:
                counts[table.name] = int(conn.execute(table.delete().where(*where)).rowcount or 0)
        reports = f"{schema}.reports"
        if table_exists(conn, reports):
            params = {"model": spec.name, "cutoff": cutoff}
            statement = "count_old_reports" if dry_run else "delete_old_reports"
            result = conn.execute(render(statement, table=reports), params)
            counts["reports"] = int(result.scalar_one() if dry_run else result.rowcount or 0)
    return counts


# -- report files ----------------------------------------------------------------------------------------
def _old_files(home: Path, model: str, cutoff: dt.date) -> Iterator[Path]:
    """Drift HTML `drift/<model>/YYYY-MM-DD.html` and GX result folders `validation/<model>/YYYY-MM-DD/`."""
    for folder, suffix in ((home / "drift" / model, ".html"), (home / "validation" / model, "")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if suffix and path.suffix != suffix:
                continue
            try:
                day = dt.date.fromisoformat(path.name.removesuffix(suffix))
            except ValueError:
                continue  # not ml-batch's: never touched
            if day < cutoff:
                yield path


# -- leftovers of killed runs ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Owner:
    """The run an object belongs to, and whether it is provably over (its objects may go)."""

    run_id: str
    status: str
    cleaned: bool

    @property
    def over(self) -> bool:
        return self.status in FINISHED or self.cleaned


def _sweep_leftovers(engine: sa.Engine, spec: Spec, report: PruneReport) -> None:
    owners, found = _run_objects_and_leftovers(engine, spec)
    for relname, relkind in found:
        name = spec.predictions.qualified(relname)
        owner = owners.get(name)
        if owner is None and not relname.startswith(staging_prefix(spec)):
            continue  # a GX view or snapshot of another model sharing the schema
        if owner is not None and not owner.over:
            report.kept_leftovers.append(f"{name} (run {owner.run_id} is {owner.status})")
            continue
        item = RunObject(name, "view" if relkind == "v" else _kind_of(name))
        if report.dry_run or _drop_finished(engine, spec, item, owner):
            report.leftovers.append(name if owner is None else f"{name} (run {owner.run_id}, {owner.status})")


def _run_objects_and_leftovers(engine: sa.Engine, spec: Spec) -> tuple[dict[str, _Owner], list[tuple[str, str]]]:
    """Every object name the model's runs may have, with its run; and the run objects the schema holds."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.shards,
                                      (runs.c.cleaned_at >= runs.c.started_at).label("cleaned"))
                            .where(runs.c.model_name == spec.name)).all()
        found = conn.execute(render("select_run_objects"), {
            "schema": spec.predictions.schema_name,
            "staging_pattern": staging_prefix(spec).replace("_", r"\_") + "%",
        }).all()
    owners = {item.name: _Owner(row.run_id, row.status, bool(row.cleaned))
              for row in rows for item in run_objects(spec, row.run_id, int(row.shards))}
    return owners, [(str(relname), str(relkind)) for relname, relkind in found]


def _kind_of(name: str) -> ObjectKind:
    """A run table's kind from its name: a snapshot of the day, or a staging table."""
    return "snapshot" if name.rpartition(".")[2].startswith(SNAPSHOT_PREFIX) else "table"


def _drop_finished(engine: sa.Engine, spec: Spec, item: RunObject, owner: _Owner | None) -> bool:
    """Drop a finished run's object under the run's exclusive lock (as the cleanup of dead runs takes it);
    False when the run is busy (a retry started) or the object is in use."""
    lock = None if owner is None else lifecycle.run_lock_id(engine, spec.name, owner.run_id)

    def drop(conn: sa.Connection) -> bool:
        if owner is not None and not _still_over(conn, spec, owner.run_id):
            return False
        conn.execute(lifecycle.drop_statement(item))
        logger.warning("dropped %s left by run %s of %s", item.name, owner.run_id if owner else "(no run row)",
                       spec.name)
        return True

    return bool(locks.when_free(engine, lock, drop, what=f"sweep of {item.name} of {spec.name}"))


def _still_over(conn: sa.Connection, spec: Spec, run_id: str) -> bool:
    """Re-checked on the locked run row: the run is over (a retry may have started since it was listed)."""
    row = conn.execute(sa.select(runs.c.status, runs.c.cleaned_at >= runs.c.started_at)
                       .where(runs.c.model_name == spec.name, runs.c.run_id == run_id)
                       .with_for_update(skip_locked=True)).one_or_none()
    return row is not None and _Owner(run_id, row[0], bool(row[1])).over

"""Retention: `ml-batch prune --model M --keep-days N [--dry-run]`, and the sweep of what killed runs left.

Everything of model M about a day before the cutoff (today - N days) goes:

- **prediction partitions** `<table>_pYYYYMMDD`: detached and dropped one day per transaction, under the
  day's publish advisory lock and the publish's lock-timeout rule (`publish.SwapLocking`: each attempt
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
`ml_batch_day_*` of runs that are provably finished: `success`, or already cleaned up, taken under the run's
exclusive lock so a retry starting meanwhile is never swept; staging tables of no run at all (their run's
row is gone) go too. A `running` run, and a `failed` run the cleanup did not find dead (Airflow may still
retry it), keep theirs.

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

from ml_batch.db.disconnects import is_lock_not_available
from ml_batch.db.sqlfiles import render, render_regclass
from ml_batch.db.tables import (
    alerts,
    drift_days,
    drift_results,
    published_days,
    quarantine,
    run_shards,
    runs,
    shadow_comparisons,
    shadow_predictions,
)
from ml_batch.run import lifecycle, snapshot
from ml_batch.run.staging import (
    DEFAULT_LOCKING,
    SwapLocking,
    lock_day,
    partition_name,
    qualified,
    staging_table,
    table_exists,
    with_short_locks,
)
from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

_SWEEP_LOCK_TIMEOUT = "5s"  # an object in use by someone: leave it for the next prune


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
    for day, partition in _old_partitions(engine, spec, cutoff):
        report.partitions.append(partition)
        if not dry_run:
            _drop_partition(engine, spec, day, partition, locking)
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
            found.append((day, qualified(spec, name)))
    return found


def _drop_partition(engine: sa.Engine, spec: Spec, day: dt.date, partition: str, locking: SwapLocking) -> None:
    """Detach and drop day `day` under the publish's lock for the day, never queueing readers for long."""
    assert partition == qualified(spec, partition_name(spec, day))
    with engine.begin() as conn:
        lock_day(conn, spec, day)  # a publish of the same day waits for the prune, or the reverse

        def drop() -> None:
            if table_exists(conn, partition):
                conn.execute(render("detach_partition", table=spec.predictions.table, partition=partition))
                conn.execute(render("drop_table", table=partition))

        with_short_locks(conn, locking, drop, what=f"prune of {spec.predictions.table} day {day}")
        conn.execute(published_days.delete().where(published_days.c.model_name == spec.name,
                                                   published_days.c.partition_date == day))
    logger.info("pruned partition %s of %s (day %s)", partition, spec.name, day)


# -- rows of ml-batch's tables ---------------------------------------------------------------------------
def _prune_rows(engine: sa.Engine, spec: Spec, schema: str, cutoff: dt.date, dry_run: bool) -> dict[str, int]:
    old_runs = sa.select(runs.c.run_id).where(runs.c.model_name == spec.name, runs.c.partition_date < cutoff,
                                              runs.c.status != "running")
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
        (runs, [runs.c.model_name == spec.name, runs.c.partition_date < cutoff, runs.c.status != "running"]),
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
def _sweep_leftovers(engine: sa.Engine, spec: Spec, report: PruneReport) -> None:
    from ml_batch.run.scoring import shard_view  # here: scoring imports lifecycle, which this module imports

    owners: dict[str, tuple[str, str, bool]] = {}  # object -> (run id, status, cleaned since started)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(runs.c.run_id, runs.c.status, runs.c.shards,
                                      (runs.c.cleaned_at >= runs.c.started_at).label("cleaned"))
                            .where(runs.c.model_name == spec.name)).all()
        prefix = f"{spec.predictions.table_name}__s_"
        found = conn.execute(render("select_run_objects"), {
            "schema": spec.predictions.schema_name,
            "staging_pattern": prefix.replace("_", r"\_") + "%",
        }).all()
    for row in rows:
        names = [staging_table(spec, row.run_id), *snapshot.snapshot_tables(spec, row.run_id),
                 *(shard_view(spec, row.run_id, shard) for shard in range(int(row.shards)))]
        for name in names:
            owners[name] = (row.run_id, row.status, bool(row.cleaned))
    for relname, relkind in found:
        name = qualified(spec, relname)
        owner = owners.get(name)
        if owner is None and not relname.startswith(prefix):
            continue  # a GX view or snapshot of another model sharing the schema
        if owner is not None and not (owner[1] == "success" or owner[2]):
            report.kept_leftovers.append(f"{name} (run {owner[0]} is {owner[1]})")
            continue
        if report.dry_run or _drop_finished(engine, spec, name, relkind, owner[0] if owner else None):
            report.leftovers.append(name if owner is None else f"{name} (run {owner[0]}, {owner[1]})")


def _drop_finished(engine: sa.Engine, spec: Spec, name: str, relkind: str, run_id: str | None) -> bool:
    """Drop a finished run's object under the run's exclusive lock (as the cleanup of dead runs takes it);
    False when the run is busy (a retry started) or the object is in use."""
    with engine.connect() as conn:
        lock = lifecycle.run_lock_id(engine, spec.name, run_id or "")
        if run_id is not None:
            got = conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock))).scalar_one()
            conn.commit()
            if not got:
                return False
        try:
            with conn.begin():
                conn.execute(sa.select(sa.func.set_config("lock_timeout", _SWEEP_LOCK_TIMEOUT, True)))
                if run_id is not None:
                    status = conn.execute(sa.select(runs.c.status, runs.c.cleaned_at >= runs.c.started_at)
                                          .where(runs.c.model_name == spec.name, runs.c.run_id == run_id)
                                          .with_for_update(skip_locked=True)).one_or_none()
                    if status is None or not (status[0] == "success" or status[1]):
                        return False
                if relkind == "v":
                    conn.execute(render("drop_view", view=name))
                elif name.rpartition(".")[2].startswith(snapshot.PREFIX):
                    conn.execute(render("drop_day_snapshot", table=name))  # CASCADE: a killed shard's GX view
                else:
                    conn.execute(render("drop_table", table=name))
            logger.warning("dropped %s left by run %s of %s", name, run_id or "(no run row)", spec.name)
            return True
        except sa.exc.OperationalError as exc:
            if not is_lock_not_available(exc):
                raise
            logger.info("%s of %s is in use: not dropped now", name, spec.name)
            return False
        finally:
            if run_id is not None:
                conn.execute(sa.select(sa.func.pg_advisory_unlock(lock)))
                conn.commit()

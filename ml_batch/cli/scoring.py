"""`ml-batch score`, `ml-batch runs` and `ml-batch prune`: a day's run, the runs of a model, retention."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from ml_batch.cli.common import (
    JsonOpt,
    ModelOpt,
    app,
    day_option,
    find_spec,
    load_settings,
    open_engine,
    out,
    print_json,
    runs_app,
    step,
)


# -- score / runs ------------------------------------------------------------------------------------------
@app.command("score")
def score_cmd(
    model: ModelOpt,
    date: Annotated[str, typer.Option("--date", "-d", help="Partition day D: rows with D <= date < D+1 (UTC).")],
    version: Annotated[int | None, typer.Option("--version", help="Score with this version (default: champion).")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and score, publish nothing.")] = False,
    shards: Annotated[int | None, typer.Option("--shards", min=1, max=64,
                                               help="Split the day into K shards (default: from the spec).")] = None,
    allow_partial: Annotated[bool, typer.Option(
        "--allow-partial", help="Publish the day even when it looks incomplete (its volume against its history, "
                                "the source's ready_query); the run is marked partial.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Score one day outside Airflow, through the same code path as the daily DAG.

    A day that looks incomplete (docs/completeness.md) is refused with exit code 1 and nothing is published,
    unless --allow-partial is given.
    """
    from ml_batch.monitoring.settled import settle_published_day
    from ml_batch.run.day import score_day
    from ml_batch.spec_folder import read_spec

    settings = load_settings()
    pinned = read_spec(settings.specs_dir, model)
    spec = pinned.spec
    day = day_option(date, "--date")
    run_id = f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%f}"
    with step(f"scoring {model} for {day} (run {run_id})", as_json):
        engine = open_engine(settings)
        summary = score_day(engine, pinned, day, run_id=run_id, run_type="cli", version=version,
                            dry_run=dry_run, shards=shards, allow_partial=allow_partial,
                            results_dir=settings.home / "validation")
        settle_published_day(engine, spec, summary, dt.datetime.now(dt.UTC))
    if as_json:
        print_json(summary.to_xcom())
        return
    verb = "checked (dry run, nothing published)" if dry_run else f"published to {spec.predictions.table}"
    if summary.partial:
        verb += " as PARTIAL (its completeness checks refused it; see `ml-batch runs`)"
    mean = f"{summary.score_mean:.4f}" if summary.score_mean is not None else "-"
    out.print(f"{model} {day}: {summary.extracted} rows, {summary.scored} scored, {summary.quarantined} "
              f"quarantined, version {summary.version}, mean score {mean}; {verb} (run {run_id})")




@runs_app.callback()
def runs_cmd(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model name (the spec's `name`).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many runs.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Recent runs of a model: rows in / scored / quarantined, version, stage durations, status."""
    from ml_batch.run.runs import list_runs

    if ctx.invoked_subcommand is not None:
        return
    if model is None:
        raise typer.BadParameter("missing option '--model' / '-m' (or a subcommand: cleanup)")
    settings = load_settings()
    find_spec(settings, model)  # an unknown model is an error naming the known ones, not "no runs"
    rows = list_runs(open_engine(settings), model, limit)
    if as_json:
        print_json(rows)
        return
    table = Table("day", "status", "type", "version", "rows", "scored", "quar.", "mean score", "seconds", "run id")
    # The error is shown whole (runs.fail keeps one line of it): wrapped at spaces, a long word folded, never cut.
    table.columns[1].overflow = "fold"
    for r in rows:
        seconds = sum(float(v) for v in (r["stage_seconds"] or {}).values())
        mean = f"{r['score_mean']:.4f}" if r["score_mean"] is not None else "-"
        status = r["status"] if not r["error"] else f"{r['status']}: {r['error']}"
        if r.get("partial"):
            status = f"{status} (partial: {_volume_note(r)})"
        if r["status"] == "running" and r.get("holder"):
            status = f"running ({r['holder']})"
        table.add_row(str(r["partition_date"]), escape(status), r["run_type"], str(r["model_version"]),
                      str(r["rows_extracted"] or "-"), str(r["rows_scored"] or "-"),
                      str(r["rows_quarantined"] if r["rows_quarantined"] is not None else "-"), mean,
                      f"{seconds:.1f}", r["run_id"])
    out.print(table if rows else f"no runs of {model}")


def _volume_note(run: dict[str, Any]) -> str:
    """A partial run's rows against the volume its plan expected, e.g. `419 of ~810 rows`."""
    volume = (run.get("day_check") or {}).get("volume") or {}
    expected = volume.get("expected")
    return f"{run['rows_extracted']} of ~{expected:.0f} rows" if expected else "see day_check"


@runs_app.command("cleanup")
def runs_cleanup(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model (default: every spec).")]
    = None,
    stale_hours: Annotated[float | None, typer.Option(
        "--stale-hours", min=0,
        help="Staleness window of multi-process (Airflow) runs, in hours (default: 6). Runs of `ml-batch score` "
             "are dead as soon as no process holds them.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Mark dead runs failed and drop what they left: staging tables, GX views, quarantine rows.

    A run is dead when no process holds its lock and it ran in one process (`ml-batch score`) or its last
    step is older than the staleness window. Live runs and published days are never touched.
    """
    from ml_batch.run.lifecycle import DEFAULT_STALE_AFTER, cleanup_dead_runs
    from ml_batch.spec_folder import load_specs

    settings = load_settings()
    specs = [find_spec(settings, model)] if model else list(load_specs(settings.specs_dir).values())
    window = DEFAULT_STALE_AFTER if stale_hours is None else dt.timedelta(hours=stale_hours)
    engine = open_engine(settings)
    cleaned = [run for spec in specs for run in cleanup_dead_runs(engine, spec, stale_after=window)]
    if as_json:
        print_json([run.as_dict() for run in cleaned])
        return
    for run in cleaned:
        was = "abandoned" if run.status == "running" else "failed earlier"
        out.print(f"{run.model} {run.day} run {run.run_id} ({was}): {run.reason}; dropped "
                  f"{', '.join(run.dropped) or 'nothing'}; {run.quarantine_rows} quarantine rows removed",
                  soft_wrap=True, highlight=False)
    if not cleaned:
        out.print(f"no dead runs of {model or 'any model'}")


@app.command("prune")
def prune_cmd(
    model: ModelOpt,
    keep_days: Annotated[int, typer.Option("--keep-days", min=1, help="Keep the last N days (before today, UTC).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go; change nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Drop prediction partitions, quarantine, shadow scores, runs/alerts/drift history and report files older
    than N days, and what killed runs left (staging tables, GX views, day snapshots)."""
    from ml_batch.run.retention import prune

    settings = load_settings()
    spec = find_spec(settings, model)
    engine = open_engine(settings)
    with step(f"pruning {model}", as_json):
        report = prune(engine, spec, keep_days=keep_days, home=settings.home, schema=settings.schema,
                       dry_run=dry_run)
    if as_json:
        print_json(report.as_dict())
        return
    verb = "would drop" if dry_run else "dropped"
    out.print(f"{model}: keeping {report.cutoff} onwards{' (dry run: nothing changed)' if dry_run else ''}",
              highlight=False)
    rows = ", ".join(f"{n} {table}" for table, n in report.rows.items() if n) or "no rows"
    out.print(f"{verb} {len(report.partitions)} prediction partitions {', '.join(report.partitions)}; {rows}; "
              f"{len(report.files)} report files", soft_wrap=True, highlight=False)
    for name in report.dead_runs:
        out.print(f"cleaned up dead run {name}", soft_wrap=True, highlight=False)
    for name in report.leftovers:
        out.print(f"{verb} leftover {name}", soft_wrap=True, highlight=False)
    for name in report.kept_leftovers:
        out.print(f"kept {name}", soft_wrap=True, highlight=False)

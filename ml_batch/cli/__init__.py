"""`ml-batch`: the command line for operators and ML engineers.

Expected failures (bad spec, unknown version, tampered artifact, unreachable database...) print one line
`error: ...` on stderr and exit with code 1 (usage errors exit with 2); `--json` gives machine-readable output.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ml_batch.config import Settings
from ml_batch.errors import ConfigError, MlBatchError

app = typer.Typer(help="ml-batch: daily batch predictions from PostgreSQL.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
db_app = typer.Typer(help="The database: start, migrate, show, stop.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, aliases, audit trail.", no_args_is_help=True)
demo_app = typer.Typer(help="Synthetic demo data and the end-to-end demo.", no_args_is_help=True)
specs_app = typer.Typer(help="Model specs.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")
app.add_typer(demo_app, name="demo")
app.add_typer(specs_app, name="specs")

# Wide tables when piped (CI logs, `make demo | tee`): rich would otherwise wrap at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name (the spec's `name`).")]


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress (INFO).")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# -- helpers -----------------------------------------------------------------------------------------------
def _settings() -> Settings:
    return Settings.from_env()


def _engine(settings: Settings | None = None) -> Any:
    from ml_batch.db.engine import make_engine
    from ml_batch.db.migrate import upgrade

    settings = settings or _settings()
    engine = make_engine(settings)
    _context["database"] = f"{engine.url.host}:{engine.url.port or 5432}"
    upgrade(engine, settings.schema)
    return engine


def _spec(settings: Settings, name: str) -> Any:
    from ml_batch.spec import get_spec

    return get_spec(settings.specs_dir, name)


def _date(value: str | None, option: str) -> dt.date:
    if value is None or value == "today":
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r} is not a date: expected YYYY-MM-DD or 'today'") from exc


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# What the command is doing and where the database is: named by the error line when the database goes away.
_context: dict[str, str] = {}


@contextmanager
def _step(message: str, quiet: bool) -> Iterator[None]:
    _context["doing"] = message  # left set when the step fails: main() names it
    if quiet:
        yield
    else:
        with err.status(message):
            yield
    _context.pop("doing", None)


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# -- db ----------------------------------------------------------------------------------------------------
@db_app.command("up")
def db_up(as_json: JsonOpt = False) -> None:
    """Start the embedded server if needed (unless ML_BATCH_DATABASE_URL is set) and apply migrations."""
    from ml_batch.db.engine import make_engine, resolve_url
    from ml_batch.db.migrate import upgrade

    settings = _settings()
    with _step("starting PostgreSQL and applying migrations", as_json):
        revision = upgrade(make_engine(settings), settings.schema)
    url = resolve_url(settings)
    data = {"url": _mask_url(url), "schema": settings.schema, "migration": revision,
            "embedded": settings.database_url is None, "home": str(settings.home)}
    if as_json:
        _print_json(data)
    else:
        kind = "embedded" if data["embedded"] else "external"
        out.print(f"database up ({kind}): {data['url']}  schema {settings.schema} at migration {revision}")


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Apply ml-batch's migrations (what `db up` does; the name the schema check's message gives)."""
    db_up(as_json)


@db_app.command("url")
def db_url(
    show_password: Annotated[bool, typer.Option("--show-password", help="Print the password too.")] = False,
) -> None:
    """Print the SQLAlchemy URL in use (the password is masked unless --show-password)."""
    from ml_batch.db.engine import resolve_url

    url = resolve_url(_settings(), start=False)
    out.print(url if show_password else _mask_url(url), soft_wrap=True, highlight=False)


@db_app.command("down")
def db_down() -> None:
    """Stop the embedded server (an external ML_BATCH_DATABASE_URL server is never touched)."""
    from ml_batch.db.engine import embedded_server

    settings = _settings()
    if settings.database_url:
        out.print("ML_BATCH_DATABASE_URL is set: that server is not managed by ml-batch, nothing stopped")
        return
    stopped = embedded_server(settings).stop()
    out.print("embedded PostgreSQL stopped" if stopped else "embedded PostgreSQL was not running")


@db_app.command("grant-analyst")
def db_grant_analyst(
    role: Annotated[str, typer.Argument(help="An existing PostgreSQL role (create it with LOGIN first).")],
    as_json: JsonOpt = False,
) -> None:
    """Grant ROLE read-only access to predictions and monitoring; nothing on artifacts or raw quarantined rows.

    SELECT on every model's predictions table and `_latest` view, runs, drift, performance, alerts and the
    registry's metadata (not the artifact bytes), and on quarantine without `row_data`. Idempotent; run it
    again after adding a model. See docs/analysts.md.
    """
    from ml_batch.ops.grants import grant_analyst
    from ml_batch.spec import load_specs

    settings = _settings()
    engine = _engine(settings)
    with _step(f"granting {role} read access", as_json):
        granted = grant_analyst(engine, settings.schema, load_specs(settings.specs_dir).values(), role)
    if as_json:
        _print_json(granted.as_dict())
        return
    out.print(f"{role}: USAGE on {', '.join(granted.schemas)}; SELECT on {len(granted.tables)} tables and views; "
              f"column by column {', '.join(granted.columns)} (no artifact bytes, no quarantined row_data)",
              soft_wrap=True, highlight=False)
    for table in granted.skipped:
        out.print(f"{table} does not exist yet (the model never published): run grant-analyst again later",
                  soft_wrap=True, highlight=False)


# -- specs -------------------------------------------------------------------------------------------------
@specs_app.command("check")
def specs_check(as_json: JsonOpt = False) -> None:
    """Validate every spec in the specs folder."""
    from ml_batch.spec import load_specs

    settings = _settings()
    specs = load_specs(settings.specs_dir)
    if as_json:
        _print_json({name: spec.model_dump(mode="json") for name, spec in specs.items()})
        return
    for name, spec in specs.items():
        out.print(f"ok  {name}: {len(spec.features)} features, source {spec.source.table or 'query'}, "
                  f"predictions {spec.predictions.table}")


# -- train -------------------------------------------------------------------------------------------------
@app.command("train")
def train_cmd(
    model: ModelOpt,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Use labels known on this day (default today).")]
    = None,
    promote: Annotated[bool, typer.Option("--promote", help="Run the gate and promote if it passes.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a new version on the labels known on --as-of and register it."""
    from ml_batch.promotion.jobs import train_and_register

    settings = _settings()
    spec = _spec(settings, model)
    day = _date(as_of, "--as-of")
    engine = _engine(settings)
    with _step(f"training {model} as of {day}", as_json):
        outcome = train_and_register(engine, spec, day, actor=settings.user, promote=promote)
    data = {"version": outcome.version.as_dict(), "promoted": outcome.promoted,
            "gate": outcome.decision.as_dict() if outcome.decision else None}
    if as_json:
        _print_json(data)
        return
    v = outcome.version
    out.print(f"registered {model} version {v.version}: {spec.training.metric} "
              f"{v.metrics.get(spec.training.metric)} on holdout {v.holdout_start}..{v.holdout_end} "
              f"({v.n_train} train / {v.n_holdout} holdout rows)")
    if outcome.decision is not None:
        verdict = "promoted to champion" if outcome.promoted else "not promoted"
        out.print(f"gate: {verdict}: {outcome.decision.reason}")


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
    as_json: JsonOpt = False,
) -> None:
    """Score one day outside Airflow, through the same code path as the daily DAG."""
    from ml_batch.run.scoring import score_day
    from ml_batch.validation.gx import suite_path

    settings = _settings()
    spec = _spec(settings, model)
    day = _date(date, "--date")
    run_id = f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S.%f}"
    with _step(f"scoring {model} for {day} (run {run_id})", as_json):
        summary = score_day(
            _engine(settings), spec, day, run_id=run_id, run_type="cli", version=version, dry_run=dry_run,
            shards=shards, suite_file=suite_path(spec, settings.specs_dir),
            results_dir=settings.home / "validation",
        )
    if as_json:
        _print_json(summary.as_dict())
        return
    verb = "checked (dry run, nothing published)" if dry_run else f"published to {spec.predictions.table}"
    mean = f"{summary.score_mean:.4f}" if summary.score_mean is not None else "-"
    out.print(f"{model} {day}: {summary.extracted} rows, {summary.scored} scored, {summary.quarantined} "
              f"quarantined, version {summary.version}, mean score {mean}; {verb} (run {run_id})")


runs_app = typer.Typer(help="Runs of a model: `ml-batch runs -m MODEL` lists them; `runs cleanup` removes dead ones.",
                       invoke_without_command=True)
app.add_typer(runs_app, name="runs")


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
    rows = list_runs(_engine(), model, limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("day", "status", "type", "version", "rows", "scored", "quar.", "mean score", "seconds", "run id")
    for r in rows:
        seconds = sum(float(v) for v in (r["stage_seconds"] or {}).values())
        mean = f"{r['score_mean']:.4f}" if r["score_mean"] is not None else "-"
        status = r["status"] if not r["error"] else f"{r['status']}: {r['error'][:60]}"
        if r["status"] == "running" and r.get("holder"):
            status = f"running ({r['holder']})"
        table.add_row(str(r["partition_date"]), status, r["run_type"], str(r["model_version"]),
                      str(r["rows_extracted"] or "-"), str(r["rows_scored"] or "-"),
                      str(r["rows_quarantined"] if r["rows_quarantined"] is not None else "-"), mean,
                      f"{seconds:.1f}", r["run_id"])
    out.print(table if rows else f"no runs of {model}")


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
    from ml_batch.spec import load_specs

    settings = _settings()
    specs = [_spec(settings, model)] if model else list(load_specs(settings.specs_dir).values())
    window = DEFAULT_STALE_AFTER if stale_hours is None else dt.timedelta(hours=stale_hours)
    engine = _engine(settings)
    cleaned = [run for spec in specs for run in cleanup_dead_runs(engine, spec, stale_after=window)]
    if as_json:
        _print_json([run.as_dict() for run in cleaned])
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

    settings = _settings()
    spec = _spec(settings, model)
    engine = _engine(settings)
    with _step(f"pruning {model}", as_json):
        report = prune(engine, spec, keep_days=keep_days, home=settings.home, schema=settings.schema,
                       dry_run=dry_run)
    if as_json:
        _print_json(report.as_dict())
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


# -- monitoring --------------------------------------------------------------------------------------------
@app.command("drift")
def drift_cmd(
    model: ModelOpt,
    date: Annotated[str, typer.Option("--date", "-d", help="Day D (must be published).")],
    as_json: JsonOpt = False,
) -> None:
    """Check drift of a published day against its version's reference; print the table, write the HTML."""
    from ml_batch.monitoring.daily import check_day_drift, drift_table

    settings = _settings()
    engine = _engine(settings)
    spec = _spec(settings, model)
    day = _date(date, "--date")
    summary = check_day_drift(engine, spec, day, run_id=f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
                              report_dir=settings.home / "drift")
    _, rows = drift_table(engine, model, day)
    if as_json:
        _print_json({"summary": summary, "rows": rows})
        return
    if summary.get("status") != "checked":
        out.print(f"{model} {day}: drift not checked: {summary.get('reason')}")
        return
    table = Table("feature", "test", "value", "threshold", "p-value", "drifted")
    for r in rows:
        table.add_row(r["feature"], r["test"], _num(r["value"]), _num(r["threshold"]), _num(r["p_value"]),
                      "[red]yes[/]" if r["drifted"] else "no")
    out.print(table)
    verdict = "[red]DATASET DRIFT[/]" if summary["dataset_drift"] else "[green]no dataset drift[/]"
    out.print(f"{model} {day} version {summary['version']}: {verdict}; {len(summary['drifted_features'])} "
              f"features drifted ({summary['share']:.0%}); report {summary['report']}")


@app.command("performance")
def performance_cmd(model: ModelOpt, as_json: JsonOpt = False) -> None:
    """Realized (delayed-label) metrics per day and version, and the label-free estimates (kind `estimated`)."""
    from ml_batch.monitoring.daily import performance_table
    from ml_batch.monitoring.estimate import ESTIMATED_PREFIX

    settings = _settings()
    spec = _spec(settings, model)
    rows = performance_table(_engine(settings), model)
    if as_json:
        _print_json(rows)
        return
    metric = spec.training.metric
    table = Table("day", "version", "kind", metric, "log_loss", "calibration err.", "labelled rows")
    by_key: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault((r["partition_date"], r["model_version"], r["detail"].get("kind")), {})[r["metric"]] = r
    for (day, version, kind), metrics in by_key.items():
        n = next(iter(metrics.values()))["n"]
        # an estimate is stored as `estimated_<metric>` (ml_batch.estimate): shown in the metric's column
        value = metrics.get(metric) or metrics.get(f"{ESTIMATED_PREFIX}{metric}") or {}
        table.add_row(str(day), str(version), str(kind), _num(value.get("value")),
                      _num(metrics.get("log_loss", {}).get("value")),
                      _num(metrics.get("calibration_error", {}).get("value")), str(n))
    out.print(table if rows else f"no realized metrics for {model} yet "
              f"(labels arrive {spec.labels.delay_days} days late)")


@app.command("alerts")
def alerts_cmd(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many.")] = 30,
    as_json: JsonOpt = False,
) -> None:
    """Recent alerts (run failures, drift, performance floor, gate decisions, rollbacks)."""
    from ml_batch.ops.alerts import recent

    rows = recent(_engine(), model, limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("when", "model", "kind", "severity", "day", "message")
    for r in rows:
        table.add_row(f"{r['created_at']:%Y-%m-%d %H:%M}", r["model_name"] or "-", r["kind"], r["severity"],
                      str(r["partition_date"] or "-"), r["message"])
    out.print(table if rows else "no alerts")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


# -- models ------------------------------------------------------------------------------------------------
@models_app.command("list")
def models_list(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Registered versions with their aliases and holdout metric."""
    from ml_batch.model import registry

    versions = registry.list_versions(_engine(), model)
    if as_json:
        _print_json([v.as_dict() for v in versions])
        return
    table = Table("model", "version", "aliases", "metric", "holdout", "source", "created", "by")
    for v in versions:
        metric = next(iter(k for k in ("roc_auc", "rmse") if k in v.metrics), None)
        score = f"{metric} {v.metrics[metric]:.4f}" if metric and v.metrics[metric] is not None else "-"
        table.add_row(v.model_name, str(v.version), ",".join(v.aliases) or "-", score,
                      f"{v.holdout_start}..{v.holdout_end}", v.source, f"{v.created_at:%Y-%m-%d %H:%M}",
                      v.created_by)
    out.print(table if versions else "no registered versions")


@models_app.command("show")
def models_show(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[str, typer.Option("--version", help="Version number or alias.")] = "champion",
    as_json: JsonOpt = False,
) -> None:
    """One version in full, plus the model's recent audit events."""
    from ml_batch.model import registry

    engine = _engine()
    info = registry.get_version(engine, model, version)
    history = registry.events(engine, model, limit=20)
    if as_json:
        _print_json({"version": info.as_dict(), "events": history})
        return
    table = Table("field", "value", show_header=False)
    for key, value in info.as_dict().items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    out.print(table)
    events = Table("when", "event", "alias", "from", "to", "by", "why", title="audit trail (newest first)")
    for e in history:
        events.add_row(f"{e['created_at']:%Y-%m-%d %H:%M:%S}", e["event"], e["alias"] or "-",
                       str(e["from_version"] or "-"), str(e["to_version"] or "-"), e["actor"], e["reason"])
    out.print(events)


@models_app.command("promote")
def models_promote(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="champion or challenger.")] = "champion",
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "manual promotion",
    as_json: JsonOpt = False,
) -> None:
    """Point an alias at a version (audited)."""
    from ml_batch.model import registry

    settings = _settings()
    move = registry.promote(_engine(settings), model, version, alias=alias, actor=settings.user, reason=reason)
    _print_move(move, as_json)


@models_app.command("rollback")
def models_rollback(
    model: Annotated[str, typer.Argument(help="Model name.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the audit trail).")] = "manual rollback",
    as_json: JsonOpt = False,
) -> None:
    """Move champion back to the previous champion (audited)."""
    from ml_batch.model import registry

    settings = _settings()
    move = registry.rollback(_engine(settings), model, actor=settings.user, reason=reason)
    _print_move(move, as_json)


@models_app.command("register")
def models_register(
    model: ModelOpt,
    artifact: Annotated[Path, typer.Option(
        "--artifact", help="skops file (skops.io.dump) of a fitted sklearn Pipeline; pickle/joblib files are "
                           "refused, since loading them runs any code they contain.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="Evaluate on the holdout known on this day.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a pipeline trained outside ml-batch (a skops file holding only trusted types), after schema
    and holdout checks; it is signed like a trained version."""
    from ml_batch.promotion.jobs import register_artifact

    settings = _settings()
    spec = _spec(settings, model)
    version = register_artifact(_engine(settings), spec, artifact, _date(as_of, "--as-of"), actor=settings.user)
    if as_json:
        _print_json(version.as_dict())
        return
    out.print(f"registered {model} version {version.version} from {artifact}: "
              f"{spec.training.metric} {version.metrics.get(spec.training.metric)} on holdout "
              f"{version.holdout_start}..{version.holdout_end}")


def _print_move(move: Any, as_json: bool) -> None:
    if as_json:
        _print_json(move.__dict__)
    elif not move.changed:
        out.print(f"{move.model_name}: {move.alias} is already version {move.to_version}; nothing changed")
    else:
        out.print(f"{move.model_name}: {move.alias} moved from {move.from_version or '-'} to {move.to_version}")


# -- airflow -----------------------------------------------------------------------------------------------
airflow_app = typer.Typer(help="A local Airflow wired to ml-batch's database and DAGs.", no_args_is_help=True)
app.add_typer(airflow_app, name="airflow")


@airflow_app.command("standalone")
def airflow_standalone() -> None:
    """Start `airflow standalone` on 127.0.0.1:8080 with the DAGs and the ml_batch_db connection; Ctrl-C or
    SIGTERM stops every component it started."""
    from ml_batch.airflow.local import airflow_env, standalone

    settings = _settings()
    env = airflow_env(settings)
    err.print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}  dags={env['AIRFLOW__CORE__DAGS_FOLDER']}\n"
              f"UI: http://127.0.0.1:8080  user admin, password in "
              f"{env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated")
    code = standalone(settings)
    if code:
        raise typer.Exit(code)


@airflow_app.command("run")
def airflow_run(
    model: ModelOpt,
    days: Annotated[list[str], typer.Option("--day", help="Day to run (repeatable), YYYY-MM-DD.")],
) -> None:
    """Run the daily DAG for the given days through real Airflow (dag.test), as the demo does."""
    from ml_batch.airflow.local import run_days_in_airflow

    settings = _settings()
    _engine(settings)
    for run in run_days_in_airflow(settings, model, [_date(d, "--day") for d in days]):
        out.print(f"{run['day']}: {run['state']} ({run['run_id']})")


# -- demo --------------------------------------------------------------------------------------------------
@demo_app.command("seed")
def demo_seed(
    end_date: Annotated[str | None, typer.Option("--end-date", help="Last day of data (default yesterday UTC).")]
    = None,
    days: Annotated[int, typer.Option(help="Number of days.")] = 120,
    rows_per_day: Annotated[int, typer.Option(help="Average credit applications a day.")] = 2000,
    stores: Annotated[int, typer.Option(help="Stores, each scored every day (store_demand).")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed (same seed and dates, same data).")] = 42,
    as_json: JsonOpt = False,
) -> None:
    """(Re)create the synthetic sources of both demo models in schema `demo`: credit applications (one
    event per key) and daily store sales (recurring entities)."""
    from ml_batch.demo import credit as demo
    from ml_batch.demo import stores as demo_stores

    last = _date(end_date, "--end-date") if end_date else dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    config = demo.DemoConfig(end_date=last, days=days, rows_per_day=rows_per_day, seed=seed)
    store_config = demo_stores.StoreDemandConfig(end_date=last, days=days, stores=stores, seed=seed)
    with _step("seeding demo data", as_json):
        engine = _engine()
        summary = demo.seed(engine, config)
        store_summary = demo_stores.seed(engine, store_config)
    if as_json:
        _print_json({**summary.__dict__, "store_demand": store_summary.__dict__})
    else:
        out.print(f"seeded demo.credit_applications ({summary.applications} rows, {summary.first_day}.."
                  f"{summary.last_day}, shift from {summary.shift_start}) and demo.credit_outcomes "
                  f"({summary.outcomes} labels)")
        out.print(f"seeded demo.store_days ({store_summary.store_days} rows: {store_summary.stores} stores x "
                  f"{days} days, shift from {store_summary.shift_start}) and demo.store_sales "
                  f"({store_summary.sales} labels per store and day)")


@demo_app.command("run")
def demo_run() -> None:
    """The main job end to end on the embedded database: seed, train, register, promote, show."""
    from ml_batch.demo import job as demo_job

    demo_job.run(_settings(), out)


def main() -> None:
    """Console-script entry point: expected errors become one line and exit code 1."""
    # Typer's standalone mode already turns usage errors into a message and exit code 2; only our own
    # expected failures, and the database going away, need catching here. Anything else is a bug and
    # keeps its traceback.
    from ml_batch.db.disconnects import root_failure

    try:
        app()
    except Exception as exc:
        cause = root_failure(exc)
        if cause is None:
            raise
        err.print(f"[bold red]error:[/] {_error_line(cause)}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _error_line(cause: BaseException) -> str:
    """Our own errors as they are; a lost connection as where, while doing what, and what was said.

    The first error is named, never a failure handler's later `Connection refused` (see `root_failure`).
    """
    from ml_batch.db.disconnects import first_line

    if isinstance(cause, MlBatchError):
        return str(cause)
    where = f" at {_context['database']}" if "database" in _context else ""
    doing = _context.get("doing") or f"running 'ml-batch {' '.join(sys.argv[1:3])}'"
    return f"lost the connection to PostgreSQL{where} while {doing}: {first_line(cause)}"


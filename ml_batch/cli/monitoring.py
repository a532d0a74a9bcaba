"""`ml-batch drift`, `ml-batch performance` and `ml-batch alerts`: what monitoring found."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from ml_batch.cli.common import (
    JsonOpt,
    ModelOpt,
    app,
    day_option,
    find_spec,
    fmt_num,
    load_settings,
    open_engine,
    out,
    print_json,
)


# -- monitoring --------------------------------------------------------------------------------------------
@app.command("drift")
def drift_cmd(
    model: ModelOpt,
    date: Annotated[str, typer.Option("--date", "-d", help="Day D (must be published).")],
    as_json: JsonOpt = False,
) -> None:
    """Check drift of a published day against its version's reference; print the table, write the HTML."""
    from ml_batch.monitoring.daily import check_day_drift, drift_table

    settings = load_settings()
    engine = open_engine(settings)
    spec = find_spec(settings, model)
    day = day_option(date, "--date")
    check = check_day_drift(engine, spec, day, run_id=f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
                            report_dir=settings.home / "drift")
    _, rows = drift_table(engine, model, day)
    if as_json:
        print_json({"summary": check.to_xcom(), "rows": rows})
        return
    if check.status != "checked":
        out.print(f"{model} {day}: drift not checked: {check.reason}")
        return
    table = Table("feature", "test", "value", "threshold", "p-value", "drifted")
    for r in rows:
        table.add_row(r["feature"], r["test"], fmt_num(r["value"]), fmt_num(r["threshold"]), fmt_num(r["p_value"]),
                      "[red]yes[/]" if r["drifted"] else "no")
    out.print(table)
    verdict = "[red]DATASET DRIFT[/]" if check.dataset_drift else "[green]no dataset drift[/]"
    out.print(f"{model} {day} version {check.version}: {verdict}; {len(check.drifted_features or [])} "
              f"features drifted ({check.share or 0:.0%}); report {check.report}")


@app.command("performance")
def performance_cmd(model: ModelOpt, as_json: JsonOpt = False) -> None:
    """Realized (delayed-label) metrics per day and version, and the label-free estimates (kind `estimated`)."""
    from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
    from ml_batch.monitoring.performance import performance_table

    settings = load_settings()
    spec = find_spec(settings, model)
    rows = performance_table(open_engine(settings), model)
    if as_json:
        print_json(rows)
        return
    metric = spec.training.metric
    table = Table("day", "version", "kind", metric, "log_loss", "calibration err.", "labelled rows")
    by_key: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault((r["partition_date"], r["model_version"], r["detail"].get("kind")), {})[r["metric"]] = r
    for (day, version, kind), metrics in by_key.items():
        n = next(iter(metrics.values()))["n"]
        # an estimate is stored as `estimated_<metric>` (ml_batch.monitoring.estimate): shown in the metric's column
        value = metrics.get(metric) or metrics.get(f"{ESTIMATED_PREFIX}{metric}") or {}
        table.add_row(str(day), str(version), str(kind), fmt_num(value.get("value")),
                      fmt_num(metrics.get("log_loss", {}).get("value")),
                      fmt_num(metrics.get("calibration_error", {}).get("value")), str(n))
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

    rows = recent(open_engine(), model, limit)
    if as_json:
        print_json(rows)
        return
    table = Table("when", "model", "kind", "severity", "day", "message")
    for r in rows:
        table.add_row(f"{r['created_at']:%Y-%m-%d %H:%M}", r["model_name"] or "-", r["kind"], r["severity"],
                      str(r["partition_date"] or "-"), r["message"])
    out.print(table if rows else "no alerts")

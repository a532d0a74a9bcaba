"""`ml-batch drift`, `ml-batch performance` and `ml-batch alerts`: what monitoring found."""

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
    recheck: Annotated[bool, typer.Option("--recheck", help="Check the day again and store the new result "
                                                             "(still sends no alert).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show the drift of a published day: the stored result of its check, or a check now if it has none.

    Reading never alerts: alerts come from the DAG's drift task. A day never checked is checked now (and
    stored); `--recheck` checks a checked day again. Neither opens, updates nor resolves an alert.
    """
    from ml_batch.monitoring.daily import check_day_drift, drift_table, stored_day_drift
    from ml_batch.monitoring.rows import stored_row_note
    from ml_batch.monitoring.support import out_of_support_text

    settings = load_settings()
    engine = open_engine(settings)
    spec = find_spec(settings, model)
    day = day_option(date, "--date")
    check = None if recheck else stored_day_drift(engine, model, day)
    source = "stored"
    if check is None:
        source = "rechecked" if recheck else "checked now"
        check = check_day_drift(engine, spec, day, run_id=f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}",
                                report_dir=settings.home / "drift", raise_alerts=False)
    _, rows = drift_table(engine, model, day)
    if as_json:
        print_json({"source": source, "summary": check.to_xcom(), "rows": rows})
        return
    if check.status != "checked":
        out.print(f"{model} {day}: drift not checked: {check.reason}")
        return
    table = Table("feature", "test", "value", "threshold", "p-value", "drifted", "note")
    table.columns[-1].overflow = "fold"  # a note whole: wrapped at spaces, a long word folded, never cut
    for r in rows:
        table.add_row(r["feature"], r["test"], fmt_num(r["value"]), fmt_num(r["threshold"]), fmt_num(r["p_value"]),
                      "[red]yes[/]" if r["drifted"] else "no", escape(stored_row_note(r["test"], r["detail"])))
    out.print(table)
    verdict = "[red]DATASET DRIFT[/]" if check.dataset_drift else "[green]no dataset drift[/]"
    multivariate = {True: "; [red]multivariate drift[/]", False: "", None: ""}[check.multivariate_drift]
    out.print(f"{model} {day} version {check.version}: {verdict}; {len(check.drifted_features or [])} "
              f"features drifted ({check.share or 0:.0%}){multivariate}; report {check.report}")
    for entry in check.out_of_support:
        out.print(f"[red]out of support[/]: {escape(out_of_support_text(entry))}")
    if check.estimate_reliable is not None:
        estimates = ", ".join(f"{name.removeprefix('estimated_')} {fmt_num(value)}"
                              for name, value in check.estimated.items())
        trust = ("reliable" if check.estimate_reliable
                 else "[red]not reliable[/]: " + escape("; ".join(check.estimate_reasons)))
        out.print(f"estimated without labels: {estimates} ({trust})")
    if check.class_drift is not None:
        mix = "[red]drifted[/]" if check.class_drift else "[green]no drift[/]"
        unseen = (f"; [red]unseen classes[/]: {escape(', '.join(check.unseen_classes))}"
                  if check.unseen_classes else "")
        out.print(f"predicted classes (mix and each class's probability): {mix}{unseen}")
    for note in check.notes:
        out.print(f"not checked: {note}")
    said = {"stored": "the stored result of the day's check (--recheck to check it again)",
            "checked now": "the day had not been checked: checked now and stored",
            "rechecked": "checked again and stored"}[source]
    out.print(f"{said}; no alert was sent (alerts come from the DAG's drift task)")


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
    if spec.model.task == "multiclass":
        out.print(_multiclass_table(rows, spec.training.metric) if rows else f"no realized metrics for {model} yet "
                  f"(labels arrive {spec.labels.delay_days} days late)")
        return
    metric = spec.training.metric
    table = Table("day", "version", "kind", metric, "log_loss", "calibration err.", "rows", "reliable")
    table.columns[-1].overflow = "fold"  # the reasons whole: wrapped at spaces, a long word folded, never cut
    by_key: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault((r["partition_date"], r["model_version"], r["detail"].get("kind")), {})[r["metric"]] = r
    for (day, version, kind), metrics in by_key.items():
        n = next(iter(metrics.values()))["n"]
        # an estimate is stored as `estimated_<metric>` (ml_batch.monitoring.estimate): shown in the metric's column
        value = metrics.get(metric) or metrics.get(f"{ESTIMATED_PREFIX}{metric}") or {}
        detail = value.get("detail") or {}
        reliable = "" if kind != "estimated" or "reliable" not in detail else (
            "yes" if detail["reliable"] else "[red]no[/]: " + escape("; ".join(detail.get("unreliable_reasons") or [])))
        table.add_row(str(day), str(version), str(kind), fmt_num(value.get("value")),
                      fmt_num(metrics.get("log_loss", {}).get("value")),
                      fmt_num(metrics.get("calibration_error", {}).get("value")), str(n), reliable)
    out.print(table if rows else f"no realized metrics for {model} yet "
              f"(labels arrive {spec.labels.delay_days} days late)")


def _multiclass_table(rows: list[dict[str, Any]], gate: str) -> Table:
    """A multiclass model's metrics per day, version and kind: one column per multiclass metric
    (`ml_batch.tasks.TASK_METRICS`), the gate metric first; the labelled rows of unseen classes (left out of
    the metrics); an estimate's reliability (unavailable for multiclass, and why)."""
    from ml_batch.monitoring.estimate import ESTIMATED_PREFIX
    from ml_batch.tasks import TASK_METRICS

    metrics = [gate, *(m for m in TASK_METRICS["multiclass"] if m != gate)]
    table = Table("day", "version", "kind", *metrics, "rows", "unseen", "reliable")
    table.columns[-1].overflow = "fold"
    by_key: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for r in rows:
        by_key.setdefault((r["partition_date"], r["model_version"], r["detail"].get("kind")), {})[
            r["metric"].removeprefix(ESTIMATED_PREFIX)] = r
    for (day, version, kind), found in by_key.items():
        first = next(iter(found.values()))
        detail = first.get("detail") or {}
        unseen = detail.get("n_unseen")
        reliable = "" if kind != "estimated" or "reliable" not in detail else (
            "yes" if detail["reliable"] else "[red]no[/]: " + escape("; ".join(detail.get("unreliable_reasons") or [])))
        table.add_row(str(day), str(version), str(kind), *(fmt_num((found.get(m) or {}).get("value")) for m in metrics),
                      str(first["n"]), "-" if unseen is None else str(unseen), reliable)
    return table


@app.command("alerts")
def alerts_cmd(
    model: Annotated[str | None, typer.Option("--model", "-m", help="Only this model.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many.")] = 30,
    only_open: Annotated[bool, typer.Option("--open", help="Only the open alerts (conditions not cleared yet).")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Recent alerts (run failures, drift, out of support, performance, gate decisions, rollbacks) and their
    state: a condition is `open` until a clean day resolves it; events are sent every time."""
    from ml_batch.ops.alerts import open_alerts, recent

    settings = load_settings()
    if model is not None:
        find_spec(settings, model)  # an unknown model is an error naming the known ones, not "no alerts"
    engine = open_engine(settings)
    rows = open_alerts(engine, model)[:limit] if only_open else recent(engine, model, limit)
    if as_json:
        print_json(rows)
        return
    table = Table("updated", "model", "kind", "subject", "severity", "state", "seen", "first day", "day",
                  "message")
    table.columns[-1].overflow = "fold"  # the message whole: wrapped at spaces, a long word folded, never cut
    for r in rows:
        table.add_row(f"{r['updated_at']:%Y-%m-%d %H:%M}", r["model_name"] or "-", r["kind"], r["subject"] or "-",
                      r["severity"], r["state"], str(r["occurrences"]), str(r["first_day"] or "-"),
                      str(r["partition_date"] or "-"), escape(f"{r['message']} (what to do: {r['runbook']})"))
    out.print(table if rows else ("no open alerts" if only_open else "no alerts"))

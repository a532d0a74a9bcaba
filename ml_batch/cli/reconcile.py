"""`ml-batch reconcile`: re-score the recently published days whose source rows changed since."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ml_batch.cli.common import JsonOpt, ModelOpt, app, load_settings, open_engine, out, print_json, step


@app.command("reconcile")
def reconcile_cmd(
    model: ModelOpt,
    days: Annotated[int | None, typer.Option(
        "--days", min=0, help="Check the last N published days (default: the spec's validation.reconcile_days).")]
    = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report which days changed; re-score nothing.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare the last published days with the source now (rows, keys, updated_at) and re-score those that
    changed, each as a `reconcile` run with the version that published it. Exits 1 when a re-score failed."""
    from ml_batch.run.reconcile import reconcile
    from ml_batch.spec_folder import read_spec

    settings = load_settings()
    pinned = read_spec(settings.specs_dir, model)
    engine = open_engine(settings)
    with step(f"reconciling {model}", as_json):
        report = reconcile(engine, pinned, days=days, dry_run=dry_run, results_dir=settings.home / "validation",
                           actor="cli")
    if as_json:
        print_json(report.to_xcom())
    else:
        table = Table("day", "status", "published rows", "source rows", "changed", "published run", "new run / reason")
        for e in report.days:
            table.add_row(str(e.day), e.status, str(e.published_rows), str(e.source_rows), ", ".join(e.changes) or "-",
                          e.published_run, e.error if e.status in ("failed", "skipped") else (e.run_id or "-"))
        suffix = " (dry run: nothing re-scored)" if dry_run else ""
        out.print(table if report.days else f"no published days of {model} to reconcile")
        out.print(f"{model}: {len(report.days)} day(s) checked in {report.check_seconds:.2f}s, "
                  f"{sum(1 for e in report.days if e.changes)} changed{suffix}", highlight=False)
    report.raise_if_failed()

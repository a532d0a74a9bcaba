"""`ml-batch status`: one row per model (`ml_batch.monitoring.status`), and an exit code that says whether any needs
attention."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ml_batch.cli.common import app, err, find_spec, fmt_num, load_settings, open_engine, out, print_json

if TYPE_CHECKING:
    from ml_batch.monitoring.status import ModelStatus

#: The exit code when the command worked and some model needs attention (1 stays "the command failed").
ATTENTION_EXIT = 3


@app.command("status")
def status_cmd(
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Only this model (repeatable; default: every spec in the specs folder).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as JSON for scripts.")] = False,
) -> None:
    """Is everything fine? One line per model: champion, last run, rows and quarantine share, drift, estimate,
    realized metric against the floor, open alerts, next scheduled day; then what needs attention.

    Exit code 0 when nothing needs attention, 3 when something does (the reasons are listed; `--json` gives
    them per row as `needs_attention`), 1 when the command itself failed (e.g. an unknown model).
    """
    from ml_batch.monitoring.status import model_status
    from ml_batch.spec_folder import scan_specs

    settings = load_settings()
    broken: list[str] = []
    if model:
        specs = [find_spec(settings, name) for name in dict.fromkeys(model)]
    else:
        scan = scan_specs(settings.specs_dir)
        specs = list(scan.specs.values())
        broken = [error.message for error in scan.errors]
    rows = model_status(open_engine(settings), specs)
    attention = bool(broken) or any(row.needs_attention for row in rows)
    for message in broken:  # one bad spec file must not hide the other models; it needs attention itself
        err.print(f"[bold red]invalid spec file:[/] {escape(message)}", highlight=False, soft_wrap=True)
    if as_json:
        print_json([row.as_dict() for row in rows])
    else:
        _print_table(rows)
    if attention:
        raise typer.Exit(ATTENTION_EXIT)


def _print_table(rows: list[ModelStatus]) -> None:
    table = Table("model", "champion", "last run", "rows", "quar.", "drift", "estimate", "realized", "alerts",
                  "next day")
    # An error is shown whole: wrapped at spaces, a word longer than the column folded, never cut off.
    table.columns[2].overflow = "fold"
    for row in rows:
        run = row.last_run
        if run is None:
            last = "never run"
        else:
            last = f"{run.day} {run.status}{' (partial)' if run.partial else ''}"
            if run.error:
                last += f": {run.error}"
        share = run.quarantine_share if run is not None else None
        drift = "-" if row.drift_day is None else (
            f"{row.drift_day} " + ("[red]DRIFT[/]" if row.dataset_drift else "no drift"))
        estimate = (("unavailable" if row.estimate_reliable is False else "-") if row.estimate is None
                    else f"{row.metric} {fmt_num(row.estimate)}"
                    + (" [red](not reliable)[/]" if row.estimate_reliable is False else ""))
        realized = "-" if row.realized is None else (
            f"{row.realized_day} {row.metric} {fmt_num(row.realized)}"
            + (f" vs {row.floor}" if row.floor is not None else "")
            + (" [red]PAST FLOOR[/]" if row.realized_meets_floor is False else ""))
        alerts = "0" if not row.open_alerts else f"{row.open_alerts} ({row.worst_severity})"
        table.add_row(row.model, str(row.champion or "-"), escape(last),
                      str(run.rows_extracted if run is not None and run.rows_extracted is not None else "-"),
                      "-" if share is None else f"{share:.1%}", drift, estimate, realized, alerts,
                      f"{row.next_day} (at {row.next_run_at:%m-%d %H:%M} UTC)")
    out.print(table if rows else "no model specs in the specs folder")
    for row in rows:
        for reason in row.needs_attention:
            out.print(f"[bold red]needs attention[/] {row.model}: {escape(reason)}", highlight=False, soft_wrap=True)
    if rows and not any(row.needs_attention for row in rows):
        out.print("[green]everything is fine[/]")

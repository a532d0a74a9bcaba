"""What every command of the `ml-batch` CLI shares: the Typer app and its groups, the consoles, the options,
the settings/engine/spec helpers, and `main`, which turns an expected failure into one `error:` line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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
runs_app = typer.Typer(help="Runs of a model: `ml-batch runs -m MODEL` lists them; `runs cleanup` removes dead ones.",
                       invoke_without_command=True)
app.add_typer(runs_app, name="runs")
airflow_app = typer.Typer(help="A local Airflow wired to ml-batch's database and DAGs.", no_args_is_help=True)
app.add_typer(airflow_app, name="airflow")

# Wide tables when piped (CI logs, `make demo | tee`): rich would otherwise wrap at 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model name (the spec's `name`).")]


# Set by `--verbose`: main() then prints an expected failure's traceback above its `error:` line.
options = {"verbose": False}


@app.callback()
def _main(verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Log progress (INFO), and print the traceback of an error.")] = False) -> None:
    options["verbose"] = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


# -- helpers -----------------------------------------------------------------------------------------------
def load_settings() -> Settings:
    return Settings.from_env()


def open_engine(settings: Settings | None = None) -> Any:
    from ml_batch.db.engine import make_engine
    from ml_batch.db.migrate import upgrade

    settings = settings or load_settings()
    engine = make_engine(settings)
    context["database"] = f"{engine.url.host}:{engine.url.port or 5432}"
    upgrade(engine, settings.schema)
    return engine


def find_spec(settings: Settings, name: str) -> Any:
    from ml_batch.spec_folder import get_spec

    return get_spec(settings.specs_dir, name)


def day_option(value: str | None, option: str) -> dt.date:
    """A day option's value: `today` (or none) is today (UTC); a YYYY-MM-DD day within the range any run may
    name (`ml_batch.run.plan.check_day`: 1900-01-01 to a year after today).

    Raises:
        ConfigError: Not a date, or out of range; one line naming the option and its value.
    """
    from ml_batch.run.plan import check_day

    if value is None or value == "today":
        return dt.datetime.now(dt.UTC).date()
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ConfigError(f"{option} {value!r} is not a date: expected YYYY-MM-DD or 'today'") from exc
    return check_day(day, option)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# What the command is doing and where the database is: named by the error line when the database goes away.
context: dict[str, str] = {}


@contextmanager
def step(message: str, quiet: bool) -> Iterator[None]:
    context["doing"] = message  # left set when the step fails: main() names it
    if quiet:
        yield
    else:
        with err.status(message):
            yield
    context.pop("doing", None)


def mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def fmt_num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> None:
    """Console-script entry point: expected errors become one `error:` line and exit code 1 (with `--verbose`,
    after their traceback)."""
    # Typer's standalone mode already turns usage errors into a message and exit code 2; only our own
    # expected failures, and the database going away, need catching here. Anything else is a bug and
    # keeps its traceback.
    from ml_batch.db.disconnects import root_failure
    from ml_batch.db.faults import fault_in

    try:
        app()
    except Exception as exc:
        cause = root_failure(exc) or fault_in(exc)  # a lock or statement timeout, a deadlock: expected too
        if cause is None:
            raise
        if options["verbose"]:
            traceback.print_exception(exc, file=sys.stderr)
        err.print(f"[bold red]error:[/] {escape(_error_line(cause))}", highlight=False, soft_wrap=True)
        sys.exit(1)


def _error_line(cause: BaseException) -> str:
    """Our own errors as they are; a database fault (a lost connection, no free slot, a timeout) as what
    happened, where, while doing what, and what was said.

    The first error is named, never a failure handler's later `Connection refused` (see `root_failure`).
    """
    from ml_batch.db.faults import what_happened
    from ml_batch.errors import first_line

    if isinstance(cause, MlBatchError):
        return str(cause)
    where = f" at {context['database']}" if "database" in context else ""
    doing = context.get("doing") or f"running 'ml-batch {' '.join(sys.argv[1:3])}'"
    return f"{what_happened(cause)}{where} while {doing}: {first_line(cause)}"


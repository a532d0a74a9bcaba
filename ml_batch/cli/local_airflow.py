"""`ml-batch airflow ...`: a local Airflow wired to ml-batch's database and DAGs."""

from __future__ import annotations

from typing import Annotated

import typer

from ml_batch.cli.common import (
    ModelOpt,
    airflow_app,
    day_option,
    err,
    find_spec,
    load_settings,
    open_engine,
    out,
)
from ml_batch.errors import MlBatchError

# -- airflow -----------------------------------------------------------------------------------------------


@airflow_app.command("standalone")
def airflow_standalone() -> None:
    """Start the local Airflow (what `airflow standalone` starts) on 127.0.0.1:8080, or AIRFLOW__API__HOST /
    AIRFLOW__API__PORT, with the DAGs and the ml_batch_db connection; a busy port is refused. Ctrl-C or SIGTERM
    stops every component it started, and so does this command's end by SIGKILL."""
    from ml_batch.airflow.local import airflow_env, standalone

    settings = load_settings()
    env = airflow_env(settings)
    err.print(f"AIRFLOW_HOME={env['AIRFLOW_HOME']}  dags={env['AIRFLOW__CORE__DAGS_FOLDER']}\n"
              f"UI: http://{env['AIRFLOW__API__HOST']}:{env['AIRFLOW__API__PORT']}  user admin, password in "
              f"{env['AIRFLOW_HOME']}/simple_auth_manager_passwords.json.generated")
    code = standalone(settings)
    if code:
        raise typer.Exit(code)


@airflow_app.command("run")
def airflow_run(
    model: ModelOpt,
    days: Annotated[list[str], typer.Option("--day", help="Day to run (repeatable), YYYY-MM-DD.")],
) -> None:
    """Run the daily DAG for the given days through real Airflow (dag.test), as the demo does: each run is dated
    the moment it starts (never a scheduled run's logical date), its `date` param and note name the day. A day
    before the spec's start_date is refused (no DAG day). Exits 1 unless every run succeeded with
    its tasks run: a run with no task instance is `no_tasks`, never a success."""
    from ml_batch.airflow.local import SUCCESS, refuse_days_before_start, run_days_in_airflow

    settings = load_settings()
    wanted = [day_option(d, "--day") for d in days]
    refuse_days_before_start(model, find_spec(settings, model).start_date, wanted)
    open_engine(settings)
    found = run_days_in_airflow(settings, model, wanted)
    for run in found:
        counted = run.get("tasks")
        tasks = ", ".join(f"{n} {state}" for state, n in sorted(counted.items())) if isinstance(counted, dict) else ""
        out.print(f"{run['day']}: {run['state']} ({run['run_id']}; tasks: {tasks or 'none'})")
    unsuccessful = [str(run["day"]) for run in found if run["state"] != SUCCESS]
    if unsuccessful:
        raise MlBatchError(f"{len(unsuccessful)} of {len(found)} runs of batch_predict_{model} did not succeed: "
                           f"{', '.join(unsuccessful)} (ml-batch runs -m {model}; task logs under "
                           f"{settings.home / 'airflow' / 'logs'})")

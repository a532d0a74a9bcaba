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

# -- airflow -----------------------------------------------------------------------------------------------


@airflow_app.command("standalone")
def airflow_standalone() -> None:
    """Start `airflow standalone` on 127.0.0.1:8080 with the DAGs and the ml_batch_db connection; Ctrl-C or
    SIGTERM stops every component it started."""
    from ml_batch.airflow.local import airflow_env, standalone

    settings = load_settings()
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
    """Run the daily DAG for the given days through real Airflow (dag.test), as the demo does; a day before the
    spec's start_date is refused (Airflow would run no task for it)."""
    from ml_batch.airflow.local import refuse_days_before_start, run_days_in_airflow

    settings = load_settings()
    wanted = [day_option(d, "--day") for d in days]
    refuse_days_before_start(model, find_spec(settings, model).start_date, wanted)
    open_engine(settings)
    for run in run_days_in_airflow(settings, model, wanted):
        out.print(f"{run['day']}: {run['state']} ({run['run_id']})")

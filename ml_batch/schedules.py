"""The schedules a spec may name (`schedule`, `training.schedule`): the cron expressions Airflow's cron
timetables take and can run, checked when the spec loads.

Airflow resolves its presets (`CRON_PRESETS`, those of `airflow.sdk.definitions.timetables._cron`) and gives
the rest to croniter, its cron library, when it builds the DAG; a schedule croniter refuses is an import error
of the DAG file, which marks every DAG of that file stale: one spec's typo stopped every model's daily DAG.
Checked here, at load, it is an invalid spec like any other, named with its file (`dags/model_specs.py`), and
the other models keep their DAGs. `cron_expression` is also what reads a schedule outside Airflow
(`ml_batch.run.partition`), so "@quarterly" means there what it means to the scheduler.
"""

from __future__ import annotations

# Airflow's presets, resolved before croniter reads the expression (croniter knows most of them, not all).
CRON_PRESETS: dict[str, str] = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}


def cron_expression(schedule: str) -> str:
    """`schedule` with an Airflow preset resolved: the expression croniter reads."""
    return CRON_PRESETS.get(schedule, schedule)


def schedule_problem(schedule: str) -> str | None:
    """Why `schedule` cannot be a spec's schedule (croniter's words), or None when it can.

    Refused: what Airflow refuses (not cron), and two things it takes but cannot run right: a schedule that
    never fires (`0 6 31 2 *`: its scheduler fails on it), and croniter's random and hashed fields (`R`, `H`),
    which take another value at every parse of the DAG file.
    """
    from croniter import CroniterBadCronError, CroniterBadDateError, croniter  # Airflow's own cron library

    expected = f"expected five fields such as '0 6 * * *' or a preset ({', '.join(CRON_PRESETS)})"
    expression = cron_expression(schedule)
    if any(field.upper().startswith(("R", "H")) for field in expression.split()[:5] if field[:1].isalpha()):
        return f"{schedule!r} has a random or hashed field (R, H), which changes at every parse: {expected}"
    try:
        croniter(expression).get_next(float)
    except CroniterBadDateError as exc:
        return f"{schedule!r} never fires ({exc}): {expected}"
    except (CroniterBadCronError, ValueError) as exc:
        return f"{schedule!r} is not a cron schedule ({exc}): {expected}"
    return None

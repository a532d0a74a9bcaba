"""A local Airflow for ml-batch: environment, `make airflow` (the local stack) and the demo's DAG runs.

Airflow reads its configuration at import time, so everything here prepares an environment and runs
Airflow in a child process with it: `AIRFLOW_HOME` under ML_BATCH_HOME (sqlite metadata DB, logs), the
repo's `dags/` folder, no example DAGs, and the `ml_batch_db` connection pointing at the same PostgreSQL
the CLI uses (passed as AIRFLOW_CONN_ML_BATCH_DB, never written to a file). The API server listens on
127.0.0.1 unless AIRFLOW__API__HOST says otherwise: a development Airflow is not for the network.

`make airflow` runs what `airflow standalone` runs (scheduler, dag-processor, triggerer, api-server, the
LocalExecutor and the simple auth manager), started here rather than by `airflow standalone` so that it fits
the machine and the promise above: no log server (Airflow binds those on every interface, with no setting to
change it; on one machine the api-server reads the task and trigger logs from their files), executor slots
from the cores, a busy port refused before anything starts, and a supervisor that stops every component
when the command that started it ends, however it ends.

The demo's runs (`run_days_in_airflow`) are dated the moment they start, never at a scheduled logical date:
the scheduler and a backfill look runs up by logical date (see `run_once`); the `date` param names the day.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine, resolve_url
from ml_batch.db.migrate import upgrade
from ml_batch.errors import ConfigError, MlBatchError

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun
    from airflow.sdk import DAG

logger = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Seconds the components get to stop on SIGTERM before their process group is killed.
STOP_GRACE_SECONDS = 30.0
# How often the supervisor looks whether the command that started it, and every component, is still there.
WATCH_SECONDS = 1.0
# The components of the local stack (what `airflow standalone` starts), as `airflow` subcommands. The log
# servers are skipped: `airflow.utils.serve_logs.core` binds them on every interface (host ""), and the
# api-server on this machine reads the same log files directly.
COMPONENTS: dict[str, tuple[str, ...]] = {
    "scheduler": ("scheduler", "--skip-serve-logs"),
    "dag-processor": ("dag-processor",),
    "triggerer": ("triggerer", "--skip-serve-logs"),
    "api-server": ("api-server",),
}
SUCCESS = "success"
# The state `run_outcome` reports for a DAG run with no task instance, which Airflow calls a success.
NO_TASKS = "no_tasks"


def dags_dir() -> Path:
    return Path(os.environ.get("ML_BATCH_DAGS_DIR") or Path.cwd() / "dags").resolve()


def plugins_dir() -> Path:
    """Airflow's plugins folder: the project's `plugins/` (the ml-batch pages in the UI)."""
    return Path(os.environ.get("AIRFLOW__CORE__PLUGINS_FOLDER") or Path.cwd() / "plugins").resolve()


def airflow_env(settings: Settings) -> dict[str, str]:
    """The environment of a local Airflow that runs ml-batch's DAGs against ml-batch's database."""
    url = make_url(resolve_url(settings)).set(drivername="postgresql")
    home = settings.home / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("AIRFLOW__API__HOST") or LOCAL_HOST
    port = os.environ.get("AIRFLOW__API__PORT") or str(DEFAULT_PORT)
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_dir()),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_dir()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
        "AIRFLOW_CONN_ML_BATCH_DB": url.render_as_string(hide_password=False),
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": port,
        # Tasks reach the execution API where the server listens ("localhost" may resolve to ::1 first).
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": os.environ.get("AIRFLOW__CORE__EXECUTION_API_SERVER_URL")
        or f"http://{_connect_host(host)}:{port}/execution/",
        "ML_BATCH_HOME": str(settings.home),
        "ML_BATCH_SPECS_DIR": str(settings.specs_dir),
        "ML_BATCH_SCHEMA": settings.schema,
        # The local stack starts its components as `airflow ...` subprocesses found on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(p for p in (str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p),
    }


def _connect_host(host: str) -> str:
    """Where a local client reaches a server bound to `host` (a wildcard bind is reached on loopback)."""
    return LOCAL_HOST if host in {"0.0.0.0", "::", ""} else host


def cores() -> int:
    """The CPUs this process may run on (its affinity, which a container or `taskset` narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def stack_env(settings: Settings) -> dict[str, str]:
    """`airflow_env` for the local stack: the LocalExecutor, always (as `airflow standalone` does: the stack
    starts no other executor's workers, so a CeleryExecutor from the shell would run nothing), with one slot
    per core (Airflow's default, 32, starts 32 worker processes at once) and the simple auth manager, unless
    the environment sets those two."""
    env = airflow_env(settings)
    env["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    env.setdefault("AIRFLOW__CORE__AUTH_MANAGER",
                   "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    env.setdefault("AIRFLOW__CORE__PARALLELISM", str(cores()))
    return env


def require_free_port(host: str, port: str) -> None:
    """Refuse a port something already listens on, before anything starts (the api-server would start, fail
    to bind and leave the other components running without a UI).

    Raises:
        ConfigError: One line naming the address and how to choose another port.
    """
    try:
        number = int(port)
        family = socket.getaddrinfo(host or None, number, type=socket.SOCK_STREAM)[0][0]
    except (ValueError, socket.gaierror) as exc:
        raise ConfigError(f"AIRFLOW__API__HOST={host!r} / AIRFLOW__API__PORT={port!r}: expected a local address "
                          f"and a port number ({exc})") from exc
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the api-server binds: TIME_WAIT is free
        try:
            probe.bind((host, number))
        except OSError as exc:
            raise ConfigError(f"port {number} on {host} is in use ({exc.strerror}): stop what listens there, or "
                              f"choose another port: `make airflow PORT={number + 1}` (AIRFLOW__API__PORT)") from exc


def standalone(settings: Settings) -> int:
    """`make airflow`: the local stack with `stack_env(settings)`, stopped as a whole; returns its exit code.

    The components run under a supervisor (`supervise`) in a session of its own, so Ctrl-C in the terminal
    reaches only this command: Ctrl-C or SIGTERM here asks the supervisor to stop them, and the supervisor
    also stops them when this command is gone without a word (SIGKILL): nothing stays on the port.

    Raises:
        ConfigError: The port is in use (`require_free_port`).
    """
    env = stack_env(settings)
    _airflow_binary()
    require_free_port(env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"])
    # Tasks only check the schema version (they never migrate): migrate before any component starts.
    revision = upgrade(make_engine(settings), settings.schema)
    logger.info("ml-batch schema %s at migration %s", settings.schema, revision)
    logger.info("AIRFLOW_HOME=%s dags=%s, %s executor slot(s)", env["AIRFLOW_HOME"],
                env["AIRFLOW__CORE__DAGS_FOLDER"], env["AIRFLOW__CORE__PARALLELISM"])
    logger.info("UI and API on http://%s:%s, user admin, password in %s/simple_auth_manager_passwords.json"
                ".generated", _connect_host(env["AIRFLOW__API__HOST"]), env["AIRFLOW__API__PORT"], env["AIRFLOW_HOME"])
    supervisor = subprocess.Popen([sys.executable, "-m", "ml_batch.airflow.local", "supervise",
                                   f"--parent={os.getpid()}"], env=env, start_new_session=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return supervisor.wait()
    except KeyboardInterrupt:
        logger.info("stopping Airflow")
        supervisor.terminate()
        try:
            return supervisor.wait(timeout=STOP_GRACE_SECONDS + 30)
        except subprocess.TimeoutExpired:
            _kill_group(supervisor.pid, signal.SIGKILL)
            return supervisor.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _airflow_binary() -> Path:
    binary = Path(sys.executable).parent / "airflow"
    if not binary.exists():
        raise FileNotFoundError(f"the 'airflow' command is not installed next to {sys.executable} (run make setup)")
    return binary


def supervise(parent: int) -> int:
    """Child process of `standalone`, in a session of its own: migrate Airflow's metadata DB, start the
    `COMPONENTS` in one process group, and stop them all (SIGTERM, then SIGKILL to the group after
    STOP_GRACE_SECONDS) on SIGTERM or SIGINT, when one of them exits, or when `parent` (the command) is gone.
    Returns 0 when asked to stop, else the exit code of the component that ended first."""
    binary = _airflow_binary()
    stop = False

    def _ask_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ask_stop)
    subprocess.run([str(binary), "db", "migrate"], check=True, stdout=subprocess.DEVNULL)
    group = 0  # the first component leads the components' process group; the supervisor stays out of it
    running: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for name, args in COMPONENTS.items():
            if stop:
                break
            running[name] = subprocess.Popen([str(binary), *args], process_group=group)
            group = group or running[name].pid
        while not stop:
            ended = next(((name, p.returncode) for name, p in running.items() if p.poll() is not None), None)
            if ended is not None:
                logger.error("Airflow's %s exited with code %s: stopping the other components", *ended)
                code = ended[1] or 1
                break
            if os.getppid() != parent:
                logger.warning("the command that started Airflow (pid %d) is gone: stopping Airflow", parent)
                break
            time.sleep(WATCH_SECONDS)
    finally:
        _stop_components(running, group)
    return code


def _stop_components(running: dict[str, subprocess.Popen[bytes]], group: int) -> None:
    """SIGTERM to every component (each stops its own children), SIGKILL to their process group after
    STOP_GRACE_SECONDS, or at once to what outlived them (a task process, say)."""
    for process in running.values():
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, process in running.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("Airflow's %s did not stop within %.0fs: killing it", name, STOP_GRACE_SECONDS)
    if group:
        _kill_group(group, signal.SIGKILL)
    for process in running.values():
        process.wait()


def _kill_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def refuse_days_before_start(model: str, start_date: dt.date, days: list[dt.date]) -> None:
    """Refuse days before the spec's `start_date`, the daily DAG's first day: neither the scheduler nor a
    backfill runs the DAG for them, so neither does `ml-batch airflow run` (whose runs are dated the moment they
    start, so Airflow would run their tasks: see `run_once`).

    Raises:
        ConfigError: One line naming the first such day and the start date.
    """
    early = sorted(day for day in days if day < start_date)
    if early:
        more = f" (and {len(early) - 1} more)" if len(early) > 1 else ""
        raise ConfigError(f"model {model!r}: day {early[0].isoformat()}{more} is before the spec's start_date "
                          f"{start_date.isoformat()}, the daily DAG's first day: score it with `ml-batch score`, "
                          "or move start_date back")


def run_days_in_airflow(settings: Settings, model: str, days: list[dt.date]) -> list[dict[str, object]]:
    """Run `batch_predict_<model>` for each day through real Airflow (`dag.test()`), in a child process: one
    `run_outcome` per day, in order, failed runs included."""
    return _run_child(settings, f"batch_predict_{model}",
                      ["run-days", "--model", model, *[f"--day={d.isoformat()}" for d in days]])


def retrain_in_airflow(settings: Settings, model: str, as_of: dt.date) -> dict[str, object]:
    """Run `retrain_<model>` once through real Airflow (`dag.test()`), in a child process: its `run_outcome`."""
    return _run_child(settings, f"retrain_{model}", ["retrain", "--model", model, f"--as-of={as_of.isoformat()}"])[0]


def _run_child(settings: Settings, dag_id: str, args: list[str]) -> list[dict[str, object]]:
    """`python -m ml_batch.airflow.local ARGS` in the local Airflow environment; the JSON line it printed per
    run (`run_outcome`), also when some failed (it then exits 1). A child that printed none crashed: its
    output's tail is raised."""
    command = [sys.executable, "-m", "ml_batch.airflow.local", *args]
    result = subprocess.run(command, env=airflow_env(settings), capture_output=True, text=True, check=False)
    found = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 and not found:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"Airflow run of {dag_id} failed (exit {result.returncode}):\n{tail}")
    return found


def run_outcome(run: DagRun, **identity: str) -> dict[str, object]:
    """What one `dag.test()` run did, as the JSON line the child prints: `identity` (its day or as-of date), its
    run id, its task instances counted by state, and its state. A run with no task instance is `no_tasks`,
    never a success: Airflow marks such a run (a day before the DAG's start, say) successful with nothing
    run."""
    tasks: dict[str, int] = {}
    for ti in run.get_task_instances():
        tasks[str(ti.state)] = tasks.get(str(ti.state), 0) + 1
    state = str(run.state) if tasks else NO_TASKS
    return {**identity, "state": state, "run_id": run.run_id, "tasks": tasks}


def run_once(dag: DAG, conf: dict[str, Any], note: str) -> DagRun:
    """One `dag.test()` run of `dag` with `conf`, its note saying what it covers (the run list shows notes);
    the run.

    Its logical date is the moment it starts, as for a manual trigger, never a scheduled one: the scheduler
    and a backfill find their runs by logical date, so a test run at a cron instant would stand for that
    interval's scheduled run (the scheduler skips it, and points its next run at the same interval again, for
    ever; a backfill skips the day), and `dag.test()` replaces the run it finds at its logical date. Nor none:
    with no logical date, `dag.test()` replaces a run that has none (an asset-triggered run, an earlier demo
    run) and clears the task instances of every run of the DAG (`get_or_create_dagrun`,
    `SerializedDAG.clear_dags` without dates). A moment with microseconds is no cron instant.
    """
    from airflow.utils.session import create_session

    moment = dt.datetime.now(dt.UTC)
    run = dag.test(logical_date=moment if moment.microsecond else moment + dt.timedelta(microseconds=1),
                   run_conf=conf)
    with create_session() as session:
        session.merge(run).note = note
    return run


def _retrain(model: str, as_of: dt.date) -> int:
    from airflow.utils import db

    from ml_batch.airflow.dag_factory import build_retrain_dag
    from ml_batch.spec_folder import get_spec

    db.initdb()
    dag = build_retrain_dag(get_spec(Path(os.environ["ML_BATCH_SPECS_DIR"]), model))
    run = run_once(dag, {"as_of": as_of.isoformat()}, f"labels known on {as_of.isoformat()}")
    outcome = run_outcome(run, as_of=as_of.isoformat())
    print(json.dumps(outcome), flush=True)
    return 0 if outcome["state"] == SUCCESS else 1


def _run_days(model: str, days: list[dt.date]) -> int:
    """Child process: migrate the metadata DB, then one DAG run per day; prints one JSON line per run."""
    from airflow.utils import db

    from ml_batch.airflow.dag_factory import build_dag
    from ml_batch.spec_folder import get_spec

    db.initdb()
    spec = get_spec(Path(os.environ["ML_BATCH_SPECS_DIR"]), model)
    refuse_days_before_start(model, spec.start_date, days)
    failed = 0
    for day in days:
        # A fresh DAG object per run, as the scheduler has; the `date` param names the day the plan scores.
        outcome = run_outcome(run_for_day(build_dag(spec), day), day=day.isoformat())
        failed += outcome["state"] != SUCCESS
        print(json.dumps(outcome), flush=True)
    return 1 if failed else 0


def run_for_day(dag: DAG, day: dt.date) -> DagRun:
    """One run of a daily DAG for `day` (`run_once`: its `date` param and a note naming the day)."""
    return run_once(dag, {"date": day.isoformat()}, f"scores {day.isoformat()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_batch.airflow.local")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-days", help="run the daily DAG for the given days (env prepared by the caller)")
    run.add_argument("--model", required=True)
    run.add_argument("--day", action="append", required=True, type=dt.date.fromisoformat)
    retrain = sub.add_parser("retrain", help="run the retraining DAG once (env prepared by the caller)")
    retrain.add_argument("--model", required=True)
    retrain.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    sub.add_parser("standalone", help="`make airflow`: the local stack on 127.0.0.1, stopped as a whole")
    supervisor = sub.add_parser("supervise", help="run and stop the local stack's components (by standalone)")
    supervisor.add_argument("--parent", required=True, type=int)
    args = parser.parse_args(argv)
    if args.command in {"standalone", "supervise"}:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "supervise":
        return supervise(args.parent)
    if args.command == "standalone":
        try:
            return standalone(Settings.from_env())
        except MlBatchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    if args.command == "retrain":
        return _retrain(args.model, args.as_of)
    return _run_days(args.model, args.day)


if __name__ == "__main__":
    sys.exit(main())

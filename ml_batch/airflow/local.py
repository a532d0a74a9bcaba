"""A local Airflow for ml-batch: environment, `make airflow` (standalone) and the demo's DAG runs.

Airflow reads its configuration at import time, so everything here prepares an environment and runs
Airflow in a child process with it: `AIRFLOW_HOME` under ML_BATCH_HOME (sqlite metadata DB, logs), the
repo's `dags/` folder, no example DAGs, and the `ml_batch_db` connection pointing at the same PostgreSQL
the CLI uses (passed as AIRFLOW_CONN_ML_BATCH_DB, never written to a file). The API server listens on
127.0.0.1 unless AIRFLOW__API__HOST says otherwise: a development Airflow is not for the network.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

from sqlalchemy.engine import make_url

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine, resolve_url
from ml_batch.db.migrate import upgrade
from ml_batch.errors import ConfigError

logger = logging.getLogger(__name__)

LOCAL_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Seconds `airflow standalone` gets to stop its components before its process group is killed.
STOP_GRACE_SECONDS = 30.0


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
        # `airflow standalone` starts its components as `airflow ...` subprocesses found on PATH.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(p for p in (str(Path.cwd()), os.environ.get("PYTHONPATH", "")) if p),
    }


def _connect_host(host: str) -> str:
    """Where a local client reaches a server bound to `host` (a wildcard bind is reached on loopback)."""
    return LOCAL_HOST if host in {"0.0.0.0", "::", ""} else host


def standalone(settings: Settings) -> int:
    """`airflow standalone` with `airflow_env(settings)`, stopped as a whole; returns its exit code.

    Airflow's standalone command stops its components on Ctrl-C but not on SIGTERM, and its components'
    own children can outlive it. So it runs in a session of its own: Ctrl-C or SIGTERM here asks it to stop
    (SIGINT, its clean path), and whatever is left of its process group after STOP_GRACE_SECONDS is killed.
    """
    env = airflow_env(settings)
    binary = Path(sys.executable).parent / "airflow"
    if not binary.exists():
        raise FileNotFoundError(f"the 'airflow' command is not installed next to {sys.executable} (run make setup)")
    # Tasks only check the schema version (they never migrate): migrate before any component starts.
    revision = upgrade(make_engine(settings), settings.schema)
    logger.info("ml-batch schema %s at migration %s", settings.schema, revision)
    logger.info("AIRFLOW_HOME=%s dags=%s", env["AIRFLOW_HOME"], env["AIRFLOW__CORE__DAGS_FOLDER"])
    logger.info("UI and API on http://%s:%s, user admin, password in %s/simple_auth_manager_passwords.json"
                ".generated", _connect_host(env["AIRFLOW__API__HOST"]), env["AIRFLOW__API__PORT"], env["AIRFLOW_HOME"])
    process = subprocess.Popen([str(binary), "standalone"], env=env, start_new_session=True)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return process.wait()
    except KeyboardInterrupt:
        logger.info("stopping Airflow (process group %d)", process.pid)
        return _stop_group(process)
    finally:
        signal.signal(signal.SIGTERM, previous)
        _kill_group(process.pid, signal.SIGKILL)  # children that outlived their parent


def _stop_group(process: subprocess.Popen[bytes]) -> int:
    """SIGINT to the standalone command, then SIGTERM and SIGKILL to its process group if it lingers."""
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        logger.warning("Airflow did not stop within %.0fs: terminating its process group", STOP_GRACE_SECONDS)
    _kill_group(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _kill_group(process.pid, signal.SIGKILL)
        return process.wait()


def _kill_group(pgid: int, signum: signal.Signals) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def refuse_days_before_start(model: str, start_date: dt.date, days: list[dt.date]) -> None:
    """Refuse days before the spec's `start_date`: Airflow creates no task instance for a run before its DAG's
    start, so `dag.test()` would report such a run a success with nothing scored.

    Raises:
        ConfigError: One line naming the first such day and the start date.
    """
    early = sorted(day for day in days if day < start_date)
    if early:
        more = f" (and {len(early) - 1} more)" if len(early) > 1 else ""
        raise ConfigError(f"model {model!r}: day {early[0].isoformat()}{more} is before the spec's start_date "
                          f"{start_date.isoformat()}: Airflow runs no task for it; run it with `ml-batch run`, "
                          "or move start_date back")


def run_days_in_airflow(settings: Settings, model: str, days: list[dt.date]) -> list[dict[str, object]]:
    """Run `batch_predict_<model>` for each day through real Airflow (`dag.test()`), in a child process."""
    return _run_child(settings, f"batch_predict_{model}",
                      ["run-days", "--model", model, *[f"--day={d.isoformat()}" for d in days]])


def retrain_in_airflow(settings: Settings, model: str, as_of: dt.date) -> dict[str, object]:
    """Run `retrain_<model>` once through real Airflow (`dag.test()`), in a child process."""
    return _run_child(settings, f"retrain_{model}", ["retrain", "--model", model, f"--as-of={as_of.isoformat()}"])[0]


def _run_child(settings: Settings, dag_id: str, args: list[str]) -> list[dict[str, object]]:
    """`python -m ml_batch.airflow.local ARGS` in the local Airflow environment; the JSON lines it prints."""
    command = [sys.executable, "-m", "ml_batch.airflow.local", *args]
    result = subprocess.run(command, env=airflow_env(settings), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise RuntimeError(f"Airflow run of {dag_id} failed (exit {result.returncode}):\n{tail}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _retrain(model: str, as_of: dt.date) -> int:
    from airflow.utils import db

    from ml_batch.airflow.dag_factory import build_retrain_dag
    from ml_batch.spec_folder import get_spec

    db.initdb()
    dag = build_retrain_dag(get_spec(Path(os.environ["ML_BATCH_SPECS_DIR"]), model))
    run = dag.test(logical_date=None, run_conf={"as_of": as_of.isoformat()})
    print(json.dumps({"as_of": as_of.isoformat(), "state": str(run.state), "run_id": run.run_id}), flush=True)
    return 0 if run.state == "success" else 1


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
        # A fresh DAG object per run, as the scheduler has; the run's data interval is [D 06:00, D+1 06:00).
        dag = build_dag(spec)
        logical = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6), tzinfo=dt.UTC)
        run = dag.test(logical_date=logical)
        failed += run.state != "success"
        print(json.dumps({"day": day.isoformat(), "state": str(run.state), "run_id": run.run_id}), flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml_batch.airflow.local")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run-days", help="run the daily DAG for the given days (env prepared by the caller)")
    run.add_argument("--model", required=True)
    run.add_argument("--day", action="append", required=True, type=dt.date.fromisoformat)
    retrain = sub.add_parser("retrain", help="run the retraining DAG once (env prepared by the caller)")
    retrain.add_argument("--model", required=True)
    retrain.add_argument("--as-of", required=True, type=dt.date.fromisoformat)
    sub.add_parser("standalone", help="`make airflow`: Airflow standalone on 127.0.0.1, stopped as a whole")
    args = parser.parse_args(argv)
    if args.command == "standalone":
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return standalone(Settings.from_env())
    if args.command == "retrain":
        return _retrain(args.model, args.as_of)
    return _run_days(args.model, args.day)


if __name__ == "__main__":
    sys.exit(main())

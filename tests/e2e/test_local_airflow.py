"""`make airflow`: a local Airflow that listens on 127.0.0.1 only, fits the machine and stops as a whole.

Runs the Makefile's command (`python -m ml_batch.airflow.local standalone`) for real, waits for the API
server to listen, then ends it with SIGTERM (what `kill`, a terminal closing or a process manager sends) or
SIGKILL (nothing of it runs any more: its supervisor must notice).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ml_batch.airflow.local import cores
from tests.e2e.conftest import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MAKE_AIRFLOW = [sys.executable, "-m", "ml_batch.airflow.local", "standalone"]


def _listeners(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    """Every TCP address the processes `pids` listen on (the log servers' included)."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _env(pg_url: str, tmp_path: Path, port: int) -> dict[str, str]:
    env = {
        **os.environ, "ML_BATCH_DATABASE_URL": pg_url, "ML_BATCH_HOME": str(tmp_path / "home"),
        "ML_BATCH_DAGS_DIR": str(REPO / "dags"), "AIRFLOW__API__PORT": str(port),
    }
    for name in ("AIRFLOW__API__HOST", "AIRFLOW__CORE__PARALLELISM"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("ended_by", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_make_airflow_listens_on_localhost_only_and_sigterm_stops_every_component(
    pg_url: str, tmp_path: Path, ended_by: signal.Signals,
) -> None:
    # Before: `airflow standalone` started 32 LocalExecutor workers on 2 cores, its log servers listened on
    # 0.0.0.0:8793 and [::]:8794, and after SIGKILL to the command every component kept running on the port.
    port = free_port()
    log = tmp_path / "airflow.log"
    with log.open("wb") as out:
        wrapper = subprocess.Popen(MAKE_AIRFLOW, env=_env(pg_url, tmp_path, port), cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 300
        while not _listeners(port) and time.monotonic() < deadline and wrapper.poll() is None:
            time.sleep(2)
        assert _listeners(port), f"nothing listens on port {port}:\n{log.read_text(errors='replace')[-4000:]}"
        time.sleep(5)  # every component up (the API server is the last to bind)
        seen = {p.pid: p for p in _tree(wrapper.pid)}
        assert _listening(set(seen)) == {("127.0.0.1", port)}, "every listener of the stack, log servers included"
        # Components may retitle themselves (setproctitle: "airflow api_server -- host:...").
        titles = [" ".join(p.cmdline()) for p in seen.values() if p.is_running()]
        names = " ".join(titles).replace("_", "-")
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            assert component in names, f"{component} is not running: {names}"
        workers = [title for title in titles if "LocalExecutor" in title]
        assert len(workers) == cores(), f"{len(workers)} LocalExecutor workers on {cores()} cores: {workers}"
        # The project's plugins folder is loaded: the ml-batch pages are mounted, and refuse a stranger (404
        # would mean no plugin).
        page = httpx.get(f"http://127.0.0.1:{port}/ml-batch/", timeout=30)
        assert page.status_code == 401, (page.status_code, page.text[:500])

        wrapper.send_signal(ended_by)
        wrapper.wait(timeout=90)
        _, alive = psutil.wait_procs(list(seen.values()), timeout=60)
        assert not alive, f"still running after {ended_by.name}: {[(p.pid, p.cmdline()) for p in alive]}"
        assert not _listeners(port)
    finally:
        for process in [*_tree(wrapper.pid), *seen.values()]:
            try:
                if process.is_running():
                    os.killpg(os.getpgid(process.pid), signal.SIGKILL)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass


def test_make_airflow_on_a_busy_port_is_one_error_line(pg_url: str, tmp_path: Path) -> None:
    # Before: nothing checked; the api-server failed to bind while the other components kept running.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(MAKE_AIRFLOW, env=_env(pg_url, tmp_path, port), cwd=REPO, capture_output=True,
                                text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (Address already in use): stop what listens there, or choose "
        f"another port: `make airflow PORT={port + 1}` (AIRFLOW__API__PORT)"], result.stderr


@pytest.mark.parametrize(("day", "said"), [
    ("2025-12-31", "error: model 'credit_default': day 2025-12-31 is before the spec's start_date 2026-01-01, "
                   "the daily DAG's first day: score it with `ml-batch score`, or move start_date back"),
    ("9999-12-31", "error: --day 9999-12-31 is out of range: expected a day from 1900-01-01 to "),
])
def test_airflow_run_refuses_a_day_it_would_report_as_a_success_with_nothing_run(
        tmp_path: Path, day: str, said: str) -> None:
    # Before: Airflow created no task instance for a day before the DAG's start, and the command said success.
    # (Runs are now dated the moment they start, so Airflow would run it: the day is refused as no DAG day.)
    env = {**os.environ, "ML_BATCH_HOME": str(tmp_path), "ML_BATCH_SPECS_DIR": str(REPO / "include" / "models")}
    result = subprocess.run([sys.executable, "-m", "ml_batch.cli", "airflow", "run", "-m", "credit_default",
                             f"--day={day}"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(said) and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_airflow_run_names_each_days_outcome_and_fails_unless_every_run_succeeded(tmp_path: Path) -> None:
    # Before: a failed run made the child exit 1 and the command raised a RuntimeError with a traceback, losing
    # which day failed. No model is trained here, so the day's plan fails.
    env = {**os.environ, "ML_BATCH_HOME": str(tmp_path), "ML_BATCH_SPECS_DIR": str(REPO / "include" / "models")}
    try:
        result = subprocess.run([sys.executable, "-m", "ml_batch.cli", "airflow", "run", "-m", "credit_default",
                                 "--day=2026-03-02"], env=env, capture_output=True, text=True, timeout=600,
                                check=False)
    finally:
        subprocess.run([sys.executable, "-m", "ml_batch.cli", "db", "down"], env=env, capture_output=True,
                       timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    day_line = result.stdout.strip().splitlines()[-1]
    assert day_line.startswith("2026-03-02: failed (") and "1 failed" in day_line, result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 of 1 runs of batch_predict_credit_default did not succeed: 2026-03-02 "
                      f"(ml-batch runs -m credit_default; task logs under {tmp_path / 'airflow' / 'logs'})"], \
        result.stderr
    assert "Traceback" not in result.stderr

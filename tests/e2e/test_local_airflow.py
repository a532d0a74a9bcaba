"""`make airflow`: a local Airflow that listens on 127.0.0.1 only and stops as a whole.

Runs the Makefile's command (`python -m ml_batch.airflow.local standalone`) for real, waits for the API
server to listen, then stops it with SIGTERM (what `kill`, a terminal closing or a process manager sends).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.conftest import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

MAKE_AIRFLOW = [sys.executable, "-m", "ml_batch.airflow.local", "standalone"]


def _listeners(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_make_airflow_listens_on_localhost_only_and_sigterm_stops_every_component(
    pg_url: str, tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **os.environ, "ML_BATCH_DATABASE_URL": pg_url, "ML_BATCH_HOME": str(tmp_path / "home"),
        "ML_BATCH_DAGS_DIR": str(REPO / "dags"), "AIRFLOW__API__PORT": str(port),
    }
    env.pop("AIRFLOW__API__HOST", None)
    log = tmp_path / "airflow.log"
    with log.open("wb") as out:
        wrapper = subprocess.Popen(MAKE_AIRFLOW, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    seen: dict[int, psutil.Process] = {}
    try:
        deadline = time.monotonic() + 300
        while not _listeners(port) and time.monotonic() < deadline and wrapper.poll() is None:
            time.sleep(2)
        assert _listeners(port), f"nothing listens on port {port}:\n{log.read_text(errors='replace')[-4000:]}"
        time.sleep(5)  # every component up (the API server is the last to bind)
        seen = {p.pid: p for p in _tree(wrapper.pid)}
        assert _listeners(port) == {"127.0.0.1"}, f"the API server listens on {_listeners(port)}"
        # Components may retitle themselves (setproctitle: "airflow api_server -- host:...").
        names = " ".join(" ".join(p.cmdline()) for p in seen.values() if p.is_running()).replace("_", "-")
        for component in ("scheduler", "dag-processor", "triggerer", "api-server"):
            assert component in names, f"{component} is not running: {names}"
        # The project's plugins folder is loaded: the ml-batch pages are mounted, and refuse a stranger (404
        # would mean no plugin).
        page = httpx.get(f"http://127.0.0.1:{port}/ml-batch/", timeout=30)
        assert page.status_code == 401, (page.status_code, page.text[:500])

        wrapper.send_signal(signal.SIGTERM)
        wrapper.wait(timeout=90)
        _, alive = psutil.wait_procs(list(seen.values()), timeout=15)
        assert not alive, f"still running after SIGTERM: {[(p.pid, p.cmdline()) for p in alive]}"
        assert not _listeners(port)
    finally:
        for process in [*_tree(wrapper.pid), *seen.values()]:
            try:
                if process.is_running():
                    os.killpg(os.getpgid(process.pid), signal.SIGKILL)
            except (ProcessLookupError, psutil.NoSuchProcess):
                pass


@pytest.mark.parametrize(("day", "said"), [
    ("2025-12-31", "error: model 'credit_default': day 2025-12-31 is before the spec's start_date 2026-01-01: "
                   "Airflow runs no task for it; run it with `ml-batch run`, or move start_date back"),
    ("9999-12-31", "error: --day 9999-12-31 is out of range: expected a day from 1900-01-01 to "),
])
def test_airflow_run_refuses_a_day_it_would_report_as_a_success_with_nothing_run(
        tmp_path: Path, day: str, said: str) -> None:
    # Before: Airflow created no task instance for a day before the DAG's start, and the command said success.
    env = {**os.environ, "ML_BATCH_HOME": str(tmp_path), "ML_BATCH_SPECS_DIR": str(REPO / "include" / "models")}
    result = subprocess.run([sys.executable, "-m", "ml_batch.cli", "airflow", "run", "-m", "credit_default",
                             f"--day={day}"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert result.stderr.startswith(said) and len(result.stderr.strip().splitlines()) == 1, result.stderr

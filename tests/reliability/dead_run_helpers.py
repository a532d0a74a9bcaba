"""Run `ml-batch score` as a user would, in a subprocess of its own process group that a test can kill,
and look at what a run left behind in the database (catalog, quarantine, runs)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from ml_batch.config import Settings

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "ML_BATCH_DATABASE_URL": settings.database_url or "",
        "ML_BATCH_SCHEMA": settings.schema,
        "ML_BATCH_HOME": str(settings.home),
        "ML_BATCH_SPECS_DIR": str(settings.specs_dir),
        "ML_BATCH_USER": "dead-run-test",
        "COLUMNS": "200",
    }


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`ml-batch ARGS` to completion."""
    return subprocess.run([sys.executable, "-m", "ml_batch.cli", *args], env=cli_env(settings), capture_output=True,
                          text=True, timeout=300, cwd=REPO, check=False)


def start_cli(settings: Settings, log_dir: Path, *args: str) -> subprocess.Popen[str]:
    """`ml-batch ARGS` in the background, in a new session (its own process group), output to files."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "ml_batch.cli", *args], env=cli_env(settings), cwd=REPO, text=True,
        stdout=(log_dir / "stdout").open("w"), stderr=(log_dir / "stderr").open("w"), start_new_session=True,
    )


def kill_9(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the subprocess's process group (only ours: it was started in a session of its own)."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(probe: Callable[[], T], what: str, proc: subprocess.Popen[str] | None = None,
             timeout: float = 120.0) -> T:
    """Poll `probe` every 20 ms until it returns something truthy; fail if `proc` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def run_objects(engine: sa.Engine, schema: str) -> set[str]:
    """Staging tables, day snapshots (parents and pieces) and GX validation views in `schema` (the
    predictions schema of the toy spec)."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v') "
            r"AND (c.relname LIKE '%\_\_s\_%' OR c.relname LIKE 'ml\_batch\_validate\_%' "
            r"OR c.relname LIKE 'ml\_batch\_day\_%')"
        ), {"schema": schema}).scalars())


def validation_views(engine: sa.Engine, schema: str) -> set[str]:
    return {name for name in run_objects(engine, schema) if name.startswith("ml_batch_validate_")}


def lock_waiters(engine: sa.Engine) -> int:
    """Backends of this database waiting for a lock (a publish blocked behind the test's lock)."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
        )).scalar_one())


def runs_of(engine: sa.Engine, schema: str, model: str) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            f'SELECT run_id, status, error FROM "{schema}".runs WHERE model_name = :m'), {"m": model}).mappings()
        return {row["run_id"]: dict(row) for row in rows}


def quarantined(engine: sa.Engine, schema: str, run_id: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".quarantine WHERE run_id = :r'),
                                {"r": run_id}).scalar_one())


class BlockedSweep:
    """`ml-batch prune`'s sweep of a finished run's leftover staging table, held up by a lock the test holds.

    On entering: a leftover of run `run_id` (scored and published already) is created, the test's connection
    `holder` locks it, and the prune starts in a thread, whose DROP then waits for the lock (`lock_waiters`).
    `error()` joins the thread and returns what the prune raised.
    """

    def __init__(self, engine: sa.Engine, spec: Any, settings: Any, run_id: str, today: Any) -> None:
        from ml_batch.run.names import staging_table

        self.engine, self.spec, self.settings, self.today = engine, spec, settings, today
        self.leftover = staging_table(spec, run_id)  # as if the run's process died mid-statement
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._sweep)

    def __enter__(self) -> sa.Connection:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {self.leftover} (x int)"))
        self.holder = self.engine.connect()
        self.holder.execute(sa.text(f"LOCK TABLE {self.leftover} IN ACCESS EXCLUSIVE MODE"))  # in use
        self.thread.start()
        wait_for(lambda: lock_waiters(self.engine), "the sweep's DROP waits for the leftover", None)
        return self.holder

    def __exit__(self, *exc: object) -> None:
        self.thread.join(60)
        self.holder.invalidate()
        self.holder.close()

    def error(self) -> BaseException:
        assert not self.thread.is_alive(), "the sweep did not end"
        [error] = self.errors
        return error

    def _sweep(self) -> None:
        from ml_batch.run.retention import prune

        try:
            prune(self.engine, self.spec, keep_days=30, home=self.settings.home, schema=self.settings.schema,
                  today=self.today)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            self.errors.append(exc)

"""Issue 23 item 1-2: a database without a free connection slot is waited for, and never fails a day as bad data.

A connection holder takes every slot the server has left right before one step of a run (GX's evaluation, the
extract, publish) opens its connection. Before: GX reported `expect_table_columns_to_match_set could not be
evaluated: (psycopg2.OperationalError) ... too many clients already`, the shard failed as `batch failed
validation` (deterministic, not retried) and `runs.error` held 4,000 characters. Now the step waits with back-off
and the day publishes once the holder lets go; past `ML_BATCH_CONNECT_WAIT_S` the failure is transient.

The server is a throwaway embedded PostgreSQL of this module's own with 20 connections, never the shared one.
"""

from __future__ import annotations

import gc
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.embedded import EmbeddedPostgres
from ml_batch.db.engine import make_engine
from ml_batch.db.faults import is_deterministic_failure, is_transient_fault
from ml_batch.db.migrate import upgrade
from ml_batch.run.day import score_day
from tests.support.servers import throwaway_server
from tests.support.toy import DAY, trained_toy

pytestmark = pytest.mark.integration

MAX_CONNECTIONS = 20


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    with throwaway_server("ml_batch_test_busy_", max_connections=str(MAX_CONNECTIONS)) as pg:
        yield pg


@pytest.fixture()
def toy(server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[sa.Engine, Any, str]:
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))
    schema = f"t_{uuid.uuid4().hex[:12]}"
    settings = Settings(home=tmp_path / "home", specs_dir=tmp_path, schema=schema,
                        database_url=server.ensure_running().url, user="t")
    engine = make_engine(settings)
    upgrade(engine, schema)
    return engine, trained_toy(engine, schema), schema


class Holder:
    """Takes every free connection slot of the server and, while the step runs, keeps them taken: a slot freed
    meanwhile (a former test's engine closed by the garbage collector) is taken again within milliseconds, long
    before the step's next try (its back-off starts at 0.5 s). Once the step ended (`step_ended`), a slot its
    own connections free is left to the run (recording its failure). Lets go `after` seconds (never: None)."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.held: list[Any] = []
        self.refused = ""
        self.lock = threading.Lock()
        self.letting_go = threading.Event()
        self.step_over = threading.Event()
        self.keeper: threading.Thread | None = None

    def fill(self, after: float | None) -> None:
        gc.collect()  # connections of unreachable engines close now, not in the middle of the step
        self._take_free_slots()
        self.keeper = threading.Thread(target=self._keep, daemon=True)
        self.keeper.start()
        if after is not None:
            threading.Timer(after, self.release).start()

    def _take_free_slots(self) -> None:
        while not self.letting_go.is_set():
            try:
                connection = psycopg2.connect(host=self.url.host, port=self.url.port, user=self.url.username,
                                              password=self.url.password, dbname=self.url.database)
            except psycopg2.OperationalError as exc:
                self.refused = str(exc)
                return
            with self.lock:
                self.held.append(connection)

    def _keep(self) -> None:
        while not self.letting_go.wait(0.01) and not self.step_over.is_set():
            self._take_free_slots()

    def step_ended(self) -> None:
        self.step_over.set()
        if self.keeper is not None:
            self.keeper.join(10)

    def release(self) -> None:
        self.letting_go.set()
        if self.keeper is not None:
            self.keeper.join(10)
        with self.lock:
            while self.held:
                self.held.pop().close()


def _hold_before(monkeypatch: pytest.MonkeyPatch, target: str, holder: Holder, engine: sa.Engine,
                 after: float | None) -> None:
    """Fill the server's slots right before the first call of `target` (module:function), the engine's idle
    connections closed, so whatever that step connects to is refused."""
    module_name, _, name = target.partition(":")
    module = __import__(module_name, fromlist=[name])
    original: Callable[..., Any] = getattr(module, name)
    calls: list[int] = []

    def holding(*args: Any, **kwargs: Any) -> Any:
        if calls:
            return original(*args, **kwargs)
        calls.append(1)
        engine.pool.dispose()  # the checked-in ones: the next statement needs a new connection
        holder.fill(after)
        try:
            return original(*args, **kwargs)
        finally:
            holder.step_ended()

    monkeypatch.setattr(module, name, holding)


POINTS = {
    "gx": "ml_batch.validation.passes:run_expectations",  # GX's evaluation, its connection test passed
    "extract": "ml_batch.run.shard:_chunks_of",
    "publish": "ml_batch.run.day:publish_run",
}


@pytest.mark.parametrize("point", sorted(POINTS))
def test_a_step_refused_a_connection_waits_and_publishes(
        server: EmbeddedPostgres, toy: tuple[sa.Engine, Any, str], monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    engine, spec, schema = toy
    holder = Holder(server.info().url)
    _hold_before(monkeypatch, POINTS[point], holder, engine, after=3.0)
    try:
        summary = score_day(engine, spec, DAY, run_id=f"busy-{point}")
    finally:
        holder.release()
    assert "too many clients already" in holder.refused, holder.refused  # the holder really took every slot
    assert summary.status == "success" and summary.scored > 0
    with engine.connect() as conn:
        status, error = conn.execute(sa.text(
            f'SELECT status, error FROM "{schema}".runs WHERE run_id = :r'), {"r": f"busy-{point}"}
        ).one()
    assert (status, error) == ("success", None)


def test_past_the_wait_limit_a_refused_gx_evaluation_is_transient_not_bad_data(
        server: EmbeddedPostgres, toy: tuple[sa.Engine, Any, str], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, spec, schema = toy
    monkeypatch.setenv("ML_BATCH_CONNECT_WAIT_S", "1")
    holder = Holder(server.info().url)
    _hold_before(monkeypatch, POINTS["gx"], holder, engine, after=None)
    try:
        with pytest.raises(Exception) as raised:
            score_day(engine, spec, DAY, run_id="busy-limit")
    finally:
        holder.release()
    assert is_transient_fault(raised.value), repr(raised.value)
    assert not is_deterministic_failure(raised.value)  # Airflow retries it
    assert "batch failed validation" not in str(raised.value)
    with engine.connect() as conn:
        status, error = conn.execute(sa.text(
            f'SELECT status, error FROM "{schema}".runs WHERE run_id = \'busy-limit\'')).one()
    assert status == "failed"
    assert "\n" not in error and len(error) < 400, error
    assert "too many clients already" in error and "batch failed validation" not in error, error

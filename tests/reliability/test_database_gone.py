"""Issue 10 row 8: the database stopped in the middle of `ml-batch score` (during GX, during publish).

The CLI prints exactly one line, `error: lost the connection to PostgreSQL at HOST:PORT while scoring ...:
<what the server or driver said>`, no traceback, exit code 1: the failure handlers (recording the failure,
dropping views) cannot reach the database either, and their own errors must not replace the real one.
Once the server is back, the run (still `running`, its process gone) is cleaned up like any dead run.

The server is a throwaway embedded PostgreSQL of this module's own, never the shared session server.
"""

from __future__ import annotations

import secrets
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.embedded import EmbeddedPostgres
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import upgrade
from ml_batch.promotion.retrain import train_and_register
from tests.integration.helpers import load_toy_data, toy_spec, write_spec
from tests.reliability.dead_run_helpers import (
    BlockedSweep,
    cli,
    lock_waiters,
    run_objects,
    runs_of,
    start_cli,
    validation_views,
    wait_for,
)
from tests.support.servers import throwaway_server
from tests.support.toy import AS_OF, DAY, FIRST

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    with throwaway_server("ml_batch_test_gone_") as pg:
        yield pg


@pytest.fixture()
def toy(server: EmbeddedPostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
        ) -> tuple[Settings, sa.Engine, int]:
    monkeypatch.setenv("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))  # the CLI subprocesses inherit it
    info = server.ensure_running()  # a previous test stopped it
    schema = f"t_{uuid.uuid4().hex[:12]}"
    spec = toy_spec(schema)
    settings = Settings(home=tmp_path / "home", specs_dir=write_spec(spec, tmp_path / "specs"), schema=schema,
                        database_url=info.url, user="t")
    engine = make_engine(settings)
    upgrade(engine, schema)
    load_toy_data(engine, schema, FIRST, days=25, rows_per_day=400)
    train_and_register(engine, spec, AS_OF, actor="t", promote=True)
    return settings, engine, info.port


@pytest.mark.parametrize("point", ["gx", "publish"])
def test_database_stopped_mid_run_prints_one_error_line_naming_the_cause(
    server: EmbeddedPostgres, toy: tuple[Settings, sa.Engine, int], tmp_path: Path, point: str,
) -> None:
    settings, engine, port = toy
    proc = start_cli(settings, tmp_path / "run", "score", "--model", "toy", "--date", DAY.isoformat())
    wait_for(lambda: validation_views(engine, settings.schema), "GX validates the shard's view", proc)
    if point == "gx":
        server.stop()
    else:
        with engine.connect() as holder:
            holder.execute(sa.text(f'LOCK TABLE "{settings.schema}".toy_predictions IN ACCESS EXCLUSIVE MODE'))
            wait_for(lambda: lock_waiters(engine), "publish waits for the predictions table", proc)
            server.stop()
            holder.invalidate()  # its session went with the server
    assert proc.wait(timeout=120) == 1
    stderr = (tmp_path / "run" / "stderr").read_text()
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    others = [line for line in stderr.splitlines() if line.strip() and not line.startswith("error:")]
    assert all(" WARNING ml_batch.run.runs: could not record the failure of run" in line for line in others), stderr
    prefix = f"error: lost the connection to PostgreSQL at 127.0.0.1:{port} while scoring toy for {DAY}"
    assert errors[0].startswith(prefix), errors[0]
    cause = errors[0].removeprefix(prefix)
    said = ["server closed the connection unexpectedly", "terminating connection due to administrator command"]
    if point == "gx":  # GX may have been opening its connection when the server went: refused is first then
        said.append("Connection refused")
    assert any(words in cause for words in said), cause

    server.ensure_running()
    (dead,) = runs_of(engine, settings.schema, "toy")
    assert runs_of(engine, settings.schema, "toy")[dead]["status"] == "running"
    cleaned = cli(settings, "runs", "cleanup", "--model", "toy")
    assert cleaned.returncode == 0, cleaned.stderr
    assert runs_of(engine, settings.schema, "toy")[dead]["status"] == "failed"
    assert run_objects(engine, settings.schema) == set()


def test_a_sweep_cut_off_by_the_server_stopping_reports_its_own_statement(
        server: EmbeddedPostgres, toy: tuple[Settings, sa.Engine, int]) -> None:
    """Retention's sweep drops a finished run's leftover under the run's lock. When the server stops while the
    DROP waits, the error is the DROP's lost connection. The sweep used to release its lock in a bare `finally`,
    whose own failure (the server refusing the reconnect) replaced it: `prune` raised the release's error."""
    from ml_batch.run.day import score_day

    settings, engine, _ = toy
    spec = toy_spec(settings.schema)
    score_day(engine, spec, DAY, run_id="done")
    sweep = BlockedSweep(engine, spec, settings, "done", DAY)
    with sweep:
        server.stop()  # the sessions go with the server: the DROP's and the test's lock holder's
    error = sweep.error()
    assert isinstance(error, sa.exc.DBAPIError), repr(error)
    # Which backend the stopping server ends first is a race: the DROP's (the DROP fails), or the lock holder's
    # (the DROP gets its lock and succeeds, and the COMMIT after it is what fails, or, when the DROP's session
    # outlives its commit and its lock's release, the prune's next step is refused a connection). Each is the
    # prune's own statement; the lock's release, run in the failure handler, is never what is reported.
    frames = [frame.name for frame in traceback.extract_tb(error.__traceback__)]
    dropped = error.statement is not None and error.statement.startswith("DROP TABLE")
    committed = error.statement is None and "_commit_impl" in frames
    swept = "_sweep_leftovers" not in frames and "connect_patiently" in frames
    assert "_release" not in frames, "".join(traceback.format_exception(error))
    assert dropped or committed or swept, "".join(traceback.format_exception(error))

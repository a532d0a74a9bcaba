"""A training killed while GX validates its window (`ml_batch.model.validity`) leaves its validation view behind: a
real process, SIGKILLed. Before, the view stayed for good, and it blocked the source's owners: `ALTER TABLE ...
ALTER COLUMN ... TYPE` failed with "cannot alter type of a column used by a view". Now the view is held under a
lock of its own while it lives; the next training sweeps it, and so does `ml-batch prune`, never a live one."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.model import validity
from ml_batch.model.training import train
from ml_batch.model.validity import VIEW_PREFIX
from ml_batch.run.retention import prune
from tests.integration.helpers import load_toy_data, toy_spec
from tests.support.toy import AS_OF, FIRST

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALTER = "ALTER TABLE {table} ALTER COLUMN x2 TYPE numeric"

# A training whose GX step never ends: the test kills it there, as the OOM killer or a task timeout would.
STUCK_TRAINING = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ml_batch.config import Settings
    from ml_batch.db.engine import make_engine
    from ml_batch.model import validity
    from ml_batch.model.training import train
    from tests.integration.helpers import toy_spec
    from tests.support.toy import AS_OF

    url, schema, home, ready = sys.argv[1:5]
    engine = make_engine(Settings(home=Path(home), specs_dir=Path(home), schema=schema, database_url=url,
                                  user="killed"))

    def stuck(*args, **kwargs):
        Path(ready).write_text("in GX")
        time.sleep(600)

    validity._run_gx = stuck
    train(engine, toy_spec(schema), AS_OF)
""")


def _training_views(engine: sa.Engine, schema: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT viewname FROM pg_views WHERE schemaname = :s AND viewname LIKE :p"),
                                 {"s": schema, "p": f"{VIEW_PREFIX}%"}).scalars())


def _kill_a_training_in_gx(settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    """Start a training in a process of its own, SIGKILL it while GX runs, and wait until the server ended its
    sessions (its view's lock free): what an OOM kill leaves."""
    ready, log = tmp_path / "ready", tmp_path / "training.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", STUCK_TRAINING, settings.database_url, settings.schema, str(tmp_path), str(ready)],
            cwd=ROOT, start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the training never reached GX"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    [view] = _training_views(engine, settings.schema)
    lock = validity.view_lock(f"{settings.schema}.{view}")
    deadline = time.monotonic() + 30
    with engine.connect() as conn:
        while not conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock))).scalar_one():
            assert time.monotonic() < deadline, "the killed training's session never ended"
            time.sleep(0.05)
        conn.execute(sa.select(sa.func.pg_advisory_unlock(lock)))


def test_a_killed_trainings_view_is_swept_by_the_next_training_and_unblocks_the_source(
        settings: Settings, engine: sa.Engine, tmp_path: Path) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    _kill_a_training_in_gx(settings, engine, tmp_path)
    assert len(_training_views(engine, settings.schema)) == 1, "the killed training left its view"
    with pytest.raises(sa.exc.DBAPIError, match="cannot alter type of a column used by a view"), \
            engine.begin() as conn:
        conn.execute(sa.text(ALTER.format(table=spec.source.table)))

    train(engine, spec, AS_OF)  # sweeps what the killed one left, then validates with its own view

    assert _training_views(engine, settings.schema) == []
    with engine.begin() as conn:
        conn.execute(sa.text(ALTER.format(table=spec.source.table)))


def test_prune_sweeps_a_killed_trainings_view_but_never_a_live_one(
        settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    _kill_a_training_in_gx(settings, engine, tmp_path)
    [left] = _training_views(engine, settings.schema)
    today = AS_OF + dt.timedelta(days=1)

    def prune_now(dry_run: bool) -> list[str]:
        return prune(engine, spec, keep_days=30, home=settings.home, schema=settings.schema, today=today,
                     dry_run=dry_run).leftovers

    assert prune_now(dry_run=True) == [f"{settings.schema}.{left} (a killed training's validation view)"]
    assert _training_views(engine, settings.schema) == [left], "a dry run drops nothing"

    # A prune while a live training's GX runs: the killed one's view goes, the live one's stays.
    seen: dict[str, Any] = {}
    real_run_gx = validity._run_gx

    def with_a_prune(engine_: sa.Engine, spec_: Any, view: str, suite_file: Any) -> Any:
        seen["live"], seen["pruned"] = view, prune_now(dry_run=False)
        seen["after"] = _training_views(engine, settings.schema)
        return real_run_gx(engine_, spec_, view, suite_file)

    monkeypatch.setattr(validity, "sweep_leftover_views", lambda *a, **k: [])  # the training's own sweep: off
    monkeypatch.setattr(validity, "_run_gx", with_a_prune)
    train(engine, spec, AS_OF)

    live = seen["live"].rpartition(".")[2]
    assert seen["pruned"] == [f"{settings.schema}.{left} (a killed training's validation view)"]
    assert seen["after"] == [live], "the live training's view was kept"
    assert _training_views(engine, settings.schema) == []


def test_a_leftover_view_that_cannot_be_dropped_never_fails_a_training(
        settings: Settings, engine: sa.Engine, caplog: pytest.LogCaptureFixture) -> None:
    """Someone built a view on a killed training's leftover: DROP VIEW refuses (a dependent object). Before, the
    refusal failed every training of every model in the schema."""
    spec = toy_spec(settings.schema)
    load_toy_data(engine, settings.schema, FIRST, days=25, rows_per_day=80)
    leftover = f"{settings.schema}.{VIEW_PREFIX}0123456789abcdef"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE VIEW {leftover} AS SELECT * FROM {spec.source.table}"))
        conn.execute(sa.text(f"CREATE VIEW {settings.schema}.on_the_leftover AS SELECT * FROM {leftover}"))

    train(engine, spec, AS_OF)

    assert _training_views(engine, settings.schema) == [leftover.rpartition(".")[2]]
    assert f"could not drop {leftover}, a validation view left by a killed training" in caplog.text

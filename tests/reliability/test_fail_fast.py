"""Issue 10 row 11: a deterministic failure fails the Airflow task at once; a transient one is retried.

The DAGs keep their production retry policy (2 retries); only the delay between tries is shortened, so a
retried task shows up as try_number 3 within seconds instead of minutes.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ml_batch.airflow.tasks import fail_fast
from ml_batch.config import Settings
from ml_batch.errors import DatabaseError, SpecError, ValidationFailed, is_deterministic
from ml_batch.run.runs import list_runs
from tests.integration.helpers import airflow_task_env
from tests.support.toy import trained_toy

pytestmark = pytest.mark.integration

EMPTY_DAY = dt.date(2026, 7, 15)  # after the last day of toy data: 0 rows


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db):
    spec = trained_toy(engine, settings.schema, rows_per_day=40)
    airflow_task_env(monkeypatch, settings, spec, tmp_path)
    return spec


def _dag_with_fast_retries(spec: Any) -> Any:
    from ml_batch.airflow.dag_factory import build_dag

    dag = build_dag(spec)
    for task in dag.tasks:
        assert task.retries == 2, "the production retry policy is what this test exercises"
        task.retry_delay = dt.timedelta(seconds=1)
        task.retry_exponential_backoff = 0
    return dag


def _tries(run: Any) -> dict[str, tuple[str, int]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == run.dag_id,
                                                 TaskInstance.run_id == run.run_id).all()
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in tis}


def test_a_day_with_no_rows_fails_without_retries(engine: sa.Engine, toy) -> None:
    run = _dag_with_fast_retries(toy).test(logical_date=None, run_conf={"date": EMPTY_DAY.isoformat()})
    assert run.state == "failed"
    tries = _tries(run)
    assert tries["plan"] == ("success", 1) and tries["score"] == ("success", 1)
    assert tries["publish"] == ("failed", 1), f"a deterministic failure was retried: {tries}"
    [recorded] = list_runs(engine, "toy")
    assert recorded["status"] == "failed"
    assert f"day {EMPTY_DAY}: 0 rows extracted, expected between 1 and no upper bound" in recorded["error"]


def test_an_unreachable_database_is_retried(toy, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nobody listens on: every connection attempt is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_ML_BATCH_DB", f"postgresql://nobody:pw@127.0.0.1:{port}/nothing")
    run = _dag_with_fast_retries(toy).test(logical_date=None, run_conf={"date": EMPTY_DAY.isoformat()})
    assert run.state == "failed"
    assert _tries(run)["plan"] == ("failed", 3), "a transient failure must use every retry"


def test_deterministic_errors_stop_airflow_retries_and_keep_their_cause() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    @fail_fast
    def failing() -> None:
        raise ValidationFailed("model 'toy' day 2026-07-15: 0 rows extracted")

    with pytest.raises(AirflowFailException, match=r"0 rows extracted \(ValidationFailed: deterministic, "
                                                   r"not retried\)") as caught:
        failing()
    assert isinstance(caught.value.__cause__, ValidationFailed)
    assert is_deterministic(SpecError("bad spec")) and not is_deterministic(DatabaseError("down"))


def test_a_lock_timeout_is_transient_and_passes_through(settings: Settings, engine: sa.Engine) -> None:
    table = f'"{settings.schema}".model_versions'

    @fail_fast
    def take_lock() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            conn.execute(sa.text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))

    with engine.begin() as holder:
        holder.execute(sa.text(f"LOCK TABLE {table} IN ACCESS SHARE MODE"))
        with pytest.raises(sa.exc.OperationalError, match="lock timeout") as caught:
            take_lock()
    assert not is_deterministic(caught.value)

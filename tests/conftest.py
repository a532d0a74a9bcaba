"""Shared fixtures: a real PostgreSQL server for the whole session, a fresh schema per test.

The server is ml-batch's own embedded one, started in a temporary folder (or the server named by
ML_BATCH_DATABASE_URL when set). Each test that asks for `settings` gets a schema of its own, migrated
to head, so tests never see each other's rows.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

# Airflow reads its configuration once, at first import: point it at a throwaway home (never the user's
# real AIRFLOW_HOME and metadata DB), this repo's DAGs, and no example DAGs, before anything imports it.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ml_batch_test_airflow_"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
# Artifacts are signed with this key (subprocesses inherit it): tests never write the user's key file.
os.environ.setdefault("ML_BATCH_ARTIFACT_KEY", secrets.token_hex(32))

import pytest
import sqlalchemy as sa

from ml_batch.config import Settings
from ml_batch.db.engine import make_engine
from ml_batch.db.migrate import upgrade
from ml_batch.ops import alerts
from ml_batch.spec import Spec, load_spec
from tests.support.servers import throwaway_server
from tests.support.webhook import WebhookReceiver

REPO = Path(__file__).resolve().parents[1]
DEMO_SPECS = REPO / "include" / "models"
CREDIT_DEFAULT = DEMO_SPECS / "credit_default.yaml"

# Durability is not what the tests check: these settings make the throwaway server several times faster.


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a real PostgreSQL server for this test session."""
    external = os.environ.get("ML_BATCH_DATABASE_URL")
    if external:
        yield external
        return
    with throwaway_server("ml_batch_test_pg_") as server:
        yield server.ensure_running().url


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Airflow's (throwaway, sqlite) metadata database, migrated once for the session."""
    from airflow.utils import db

    db.initdb()


@pytest.fixture()
def tmp_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture()
def settings(pg_url: str, tmp_home: Path) -> Iterator[Settings]:
    """Settings pointing at the session server, with a fresh, migrated schema of this test's own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    result = Settings(home=tmp_home, specs_dir=DEMO_SPECS, schema=schema, database_url=pg_url, user="pytest")
    engine = make_engine(result)
    upgrade(engine, schema)
    yield result
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.fixture()
def engine(settings: Settings) -> sa.Engine:
    return make_engine(settings)


@pytest.fixture()
def toy(settings: Settings, engine: sa.Engine) -> Spec:
    """The toy model trained and promoted on this test's schema (`tests.support.toy`: its days and rows)."""
    from tests.support.toy import trained_toy

    return trained_toy(engine, settings.schema)


@pytest.fixture(scope="session")
def spec() -> Spec:
    """The shipped `credit_default` demo spec (a test module with a spec fixture of its own overrides it)."""
    return load_spec(CREDIT_DEFAULT)


@pytest.fixture()
def alert_webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookReceiver]:
    """A real webhook receiver on 127.0.0.1, named by ML_BATCH_ALERT_WEBHOOK_URL (so a CLI subprocess started
    by the test delivers to it too); its `received` bodies are what an on-call channel would get."""
    with WebhookReceiver() as found:
        monkeypatch.setenv(alerts.WEBHOOK_URL_ENV, found.url)
        yield found


def _shipped_specs() -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(DEMO_SPECS.iterdir())}


_SHIPPED_SPECS = _shipped_specs()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a test wrote into the repo's include/models: the DAG folder reads every spec there,
    so a test's spec left behind becomes a DAG for every user (a toy spec once did)."""
    found = _shipped_specs()
    if found != _SHIPPED_SPECS:
        changed = sorted(name for name in {*found, *_SHIPPED_SPECS} if found.get(name) != _SHIPPED_SPECS.get(name))
        print(f"\nERROR: the tests changed {DEMO_SPECS}: {changed}; write specs to a folder of the test's own "
              "(tests.integration.helpers.write_spec)")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
